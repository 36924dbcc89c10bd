"""`anomstream config --config FILE` also builds every detector the config names: the default
`[detector]` and each `[[detector.templates]]` entry, so a misspelt detector or parameter is a
config error naming its key, before any service starts."""

from __future__ import annotations

from anomstream.detectors.registry import build_detector
from anomstream.stream.config_errors import Problem, config_error
from anomstream.stream.config_model import Config
from anomstream.stream.errors import ConfigError

__all__ = ["check_detectors", "detector_problems"]


def detector_problems(config: Config) -> list[Problem]:
    """(dotted key, problem) for every detector of `config` that cannot be built."""
    d = config.detector
    # (key of the name, key of the params, name, params)
    entries = [("detector.name", "detector.params", d.name, d.params)]
    if d.machine_model:
        entries.append(("detector.machine_model", "detector.machine_params", d.machine_model, d.machine_params))
    entries += [
        (f"detector.templates[{i}].name", f"detector.templates[{i}].params", t.name, t.params)
        for i, t in enumerate(d.templates)
    ]
    problems: list[Problem] = []
    for name_key, params_key, name, params in entries:
        try:
            build_detector(name, params)
        except ConfigError as exc:  # unknown name, or parameters the detector does not take
            problems.append((name_key if exc.key == "detector.name" else params_key, exc.problem))
        except (TypeError, ValueError) as exc:  # a parameter value the detector rejects
            problems.append((params_key, f"{name}: {exc}"))
    return problems


def check_detectors(config: Config) -> None:
    """Raise one `ConfigError` listing every detector problem of `config`."""
    problems = detector_problems(config)
    if problems:
        raise config_error(problems)
