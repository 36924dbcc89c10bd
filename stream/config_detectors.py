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
    entries = [("detector", d.name, d.params)]
    entries += [(f"detector.templates[{i}]", t.name, t.params) for i, t in enumerate(d.templates)]
    problems: list[Problem] = []
    for where, name, params in entries:
        try:
            build_detector(name, params)
        except ConfigError as exc:  # unknown name, or parameters the detector does not take
            problems.append((exc.key.replace("detector", where, 1), exc.problem))
        except (TypeError, ValueError) as exc:  # a parameter value the detector rejects
            problems.append((f"{where}.params", f"{name}: {exc}"))
    return problems


def check_detectors(config: Config) -> None:
    """Raise one `ConfigError` listing every detector problem of `config`."""
    problems = detector_problems(config)
    if problems:
        raise config_error(problems)
