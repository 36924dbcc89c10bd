"""Where the configuration comes from, in order, later wins:

1. `config/anomstream.toml` shipped with the package (every key documented there);
2. the file given with `--config`;
3. environment variables `ANOMSTREAM_<SECTION>__<KEY>`, values parsed as TOML literals when
   they parse (`ANOMSTREAM_KAFKA__TOPIC_PARTITIONS=6`, `...__INPUT_TOPICS='["a", "b"]'`), lists
   also as `a,b`; string keys are never read as numbers, secrets are taken as written;
4. command-line flags (dotted `overrides`).

Tables merge key by key across layers (a later layer replaces only the keys it sets, also
inside `params`); lists are replaced whole. Files and the environment are read by pydantic-settings' sources; secrets
named by `*_file` keys are read last, so a secret never has to sit in the environment.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, TomlConfigSettingsSource

from anomstream.stream.config_errors import (
    Problem,
    annotation_mentions,
    config_error,
    model_in,
    set_dotted,
)
from anomstream.stream.config_model import Config, validate_config
from anomstream.stream.errors import ConfigError

__all__ = ["default_config_text", "load_config"]

# (section, secret) pairs whose secret may come from the file named by `<secret>_file`
_SECRET_FILES = (("state", "signing_key"), ("kafka", "sasl_password"))


def default_config_text() -> str:
    """The shipped default configuration file, with its comments."""
    return _shipped().read_text("utf-8")


def load_config(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the validated `Config` from defaults, `path`, `environ` and `overrides`.

    Raises `ConfigError` listing every problem found, each under its dotted key.
    """
    tree = TomlConfigSettingsSource(Config, toml_file=_shipped())()
    if path is not None:
        _merge(tree, _read_file(Path(path)))
    environment = EnvironmentSource(Config, os.environ if environ is None else environ)
    _merge(tree, environment())
    problems: list[Problem] = []
    for dotted, value in (overrides or {}).items():
        if value is not None:  # a flag not given
            set_dotted(tree, dotted, value, problems)
    for section, key in _SECRET_FILES:
        _read_secret_file(tree, section, key, problems)
    try:
        return validate_config(tree, problems)
    except ConfigError as exc:
        raise config_error([environment.attribute(*problem) for problem in exc.problems]) from None


class EnvironmentSource(EnvSettingsSource):
    """`ANOMSTREAM_<SECTION>__<KEY>` from `environ` (injectable: tests pass a dict)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)  # prefix, "__" and case from Config.model_config

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name.lower(): value for name, value in self._environ.items()}

    def decode_complex_value(self, field_name: str, field: FieldInfo | None, value: Any) -> Any:
        return value  # TOML literals, not JSON: parsed in __call__ with every other value

    def attribute(self, key: str, problem: str) -> Problem:
        """`problem` at `key`, naming the environment variable it came from, if one did."""
        prefix = self.env_prefix.lower()
        for name in sorted(self._environ):
            dotted = name[len(prefix) :].lower().replace("__", ".")
            if name.lower().startswith(prefix) and key in (dotted, dotted.split(".")[0]):
                return key, f"{problem} (from {name})"
        return key, problem

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        known = set(self.settings_cls.model_fields)
        prefix = self.env_prefix.lower()  # env_vars are lower-cased: case-insensitive names
        for name, value in self.env_vars.items():
            # The source only looks for known sections; an unknown one is a typo to report.
            section, _, rest = name[len(prefix) :].partition("__")
            if name.startswith(prefix) and rest and section not in known and value is not None:
                set_dotted(data, f"{section}.{rest.replace('__', '.')}", value, [])
        _parse_values(data, self.settings_cls)
        return data


def _parse_values(node: dict[str, Any], model: type[BaseModel] | None) -> None:
    for key, value in node.items():
        field = model.model_fields.get(key) if model is not None else None
        if isinstance(value, dict):
            _parse_values(value, model_in(field.annotation) if field is not None else None)
        elif isinstance(value, str):
            node[key] = _parse_value(value, field)


def _parse_value(raw: str, field: FieldInfo | None) -> Any:
    annotation = field.annotation if field is not None else None
    if annotation_mentions(annotation, SecretStr):
        return raw  # a password of digits is still a password
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw
    if annotation is str and not isinstance(value, str):
        return raw  # ANOMSTREAM_SERVICE__INSTANCE=3 is the name "3"
    return value


def _read_file(path: Path) -> dict[str, Any]:
    try:
        path.open("rb").close()  # the source skips a missing file silently; we must not
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return TomlConfigSettingsSource(Config, toml_file=path)()
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from None


def _merge(base: dict[str, Any], layer: Mapping[str, Any]) -> None:
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _read_secret_file(
    tree: dict[str, Any], section: str, key: str, problems: list[Problem]
) -> None:
    """`<section>.<key>_file` -> `<section>.<key>`: the secret stays out of the environment
    (visible in `docker inspect`, /proc/<pid>/environ)."""
    table = tree.get(section)
    file_key = f"{key}_file"
    path = table.get(file_key) if isinstance(table, dict) else None
    if not path or not isinstance(path, str):
        return  # unset, or of the wrong type (reported by validation)
    assert isinstance(table, dict)
    if table.get(key):
        problems.append((f"{section}.{file_key}", f"set {key} or {file_key}, not both"))
        return
    try:
        table[key] = Path(path).read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        problem = f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}"
        problems.append((f"{section}.{file_key}", problem))


def _shipped() -> Any:
    return resources.files("anomstream.config").joinpath("anomstream.toml")
