"""The one configuration object: defaults, a TOML file, environment overrides, CLI flags.

Built once in `main` and passed down. Layers, later wins:

1. `config/anomstream.toml` shipped with the package (every key documented there);
2. the file given with `--config`;
3. environment variables `ANOMSTREAM_<SECTION>__<KEY>` (values parsed as TOML literals when they
   parse, else taken as strings: `ANOMSTREAM_KAFKA__TOPIC_PARTITIONS=6`);
4. command-line flags.

Every value is type-checked and range-checked here, and unknown keys are errors, so a typo in a
config file fails at start-up with the key's dotted name instead of being silently ignored.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

from anomstream.detectors.policy import AlertPolicy
from anomstream.stream.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "AlertsConfig",
    "Config",
    "DetectorConfig",
    "DetectorTemplate",
    "HttpConfig",
    "KafkaConfig",
    "ServiceConfig",
    "StateConfig",
    "TelemetryConfig",
    "default_config_text",
    "kafka_client_options",
    "load_config",
]

ENV_PREFIX = "ANOMSTREAM_"


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be > 0"


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be >= 0"


def _unit_interval(value: Any) -> str | None:
    return None if 0.0 < value <= 1.0 else "must be in (0, 1]"


def _one_of(*choices: str) -> Any:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


def _non_empty(value: Any) -> str | None:
    return None if len(value) > 0 else "must not be empty"


def _check(fn: Any) -> Any:
    return field(metadata={"check": fn})


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: str = "localhost:9092"
    input_topics: tuple[str, ...] = ("telemetry",)
    alert_topic: str = "anomstream.alerts"
    dlq_topic: str = "anomstream.dlq"
    group_id: str = "anomstream"
    client_id: str = "anomstream"
    auto_offset_reset: str = "earliest"
    session_timeout_ms: int = 10000
    heartbeat_interval_ms: int = 1000
    max_poll_records: int = 2000
    poll_timeout_ms: int = 200
    fetch_max_wait_ms: int = 100
    create_topics: bool = True
    topic_partitions: int = 3
    producer_linger_ms: int = 5
    security_protocol: str = "PLAINTEXT"
    # TLS (security_protocol SSL or SASL_SSL); "" = unset, kafka-python's default applies.
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    ssl_password: str = field(default="", repr=False)  # the client key's password
    ssl_check_hostname: bool = True
    # SASL (security_protocol SASL_PLAINTEXT or SASL_SSL).
    sasl_mechanism: str = "PLAIN"
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    sasl_password_file: str = ""  # read the password from this file instead
    startup_timeout_seconds: float = 60.0

    _checks: ClassVar[dict[str, Any]] = {
        "bootstrap_servers": _non_empty,
        "input_topics": _non_empty,
        "alert_topic": _non_empty,
        "dlq_topic": _non_empty,
        "group_id": _non_empty,
        "auto_offset_reset": _one_of("earliest", "latest"),
        "session_timeout_ms": _positive,
        "heartbeat_interval_ms": _positive,
        "max_poll_records": _positive,
        "poll_timeout_ms": _non_negative,
        "fetch_max_wait_ms": _non_negative,
        "topic_partitions": _positive,
        "producer_linger_ms": _non_negative,
        "security_protocol": _one_of("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
        "sasl_mechanism": _one_of("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
        "startup_timeout_seconds": _positive,
    }

    def __post_init__(self) -> None:
        if self.security_protocol.startswith("SASL_"):
            if not self.sasl_username:
                raise ConfigError(
                    "kafka.sasl_username", f"required when security_protocol is {self.security_protocol}"
                )
            if not self.sasl_password:
                raise ConfigError(
                    "kafka.sasl_password",
                    f"required when security_protocol is {self.security_protocol}: set "
                    "ANOMSTREAM_KAFKA__SASL_PASSWORD or kafka.sasl_password_file",
                )
        if self.ssl_password and not self.ssl_keyfile:
            raise ConfigError(
                "kafka.ssl_password", "needs kafka.ssl_keyfile (it is that key's password)"
            )
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            _require_readable(f"kafka.{key}", getattr(self, key))


@dataclass(frozen=True)
class TelemetryConfig:
    machine_field: str = "machine_id"
    timestamp_field: str = "ts"
    sensors_field: str = "sensors"
    timestamp_unit: str = "auto"
    max_record_bytes: int = 65536

    _checks: ClassVar[dict[str, Any]] = {
        "machine_field": _non_empty,
        "timestamp_field": _non_empty,
        "sensors_field": _non_empty,
        "timestamp_unit": _one_of("auto", "iso", "s", "ms"),
        "max_record_bytes": _positive,
    }


@dataclass(frozen=True)
class DetectorTemplate:
    """A per-entity override: the first template whose patterns match picks the detector."""

    name: str = "default"
    machine: str = "*"
    sensor: str = "*"
    params: Mapping[str, Any] = field(default_factory=dict)

    _checks: ClassVar[dict[str, Any]] = {"name": _non_empty}


@dataclass(frozen=True)
class DetectorConfig:
    name: str = "default"
    entity: str = "sensor"
    warmup: int = 150
    max_entities: int = 100000
    params: Mapping[str, Any] = field(default_factory=dict)
    templates: tuple[DetectorTemplate, ...] = ()

    _checks: ClassVar[dict[str, Any]] = {
        "name": _non_empty,
        "entity": _one_of("sensor", "machine"),
        "warmup": _non_negative,
        "max_entities": _positive,
    }


@dataclass(frozen=True)
class AlertsConfig:
    """The parameters of `anomstream.detectors.policy.AlertPolicy` (its defaults are the defaults here)."""

    threshold: float = AlertPolicy.threshold
    critical_threshold: float = AlertPolicy.critical_threshold
    instant_threshold: float = AlertPolicy.instant_threshold
    min_run: int = AlertPolicy.min_run
    clear_threshold: float = AlertPolicy.clear_threshold
    clear_run: int = AlertPolicy.clear_run
    cooldown: int = AlertPolicy.cooldown

    _checks: ClassVar[dict[str, Any]] = {
        "threshold": _unit_interval,
        "critical_threshold": _unit_interval,
        "instant_threshold": _unit_interval,
        "min_run": _positive,
        "clear_threshold": _unit_interval,
        "clear_run": _positive,
        "cooldown": _non_negative,
    }


@dataclass(frozen=True)
class StateConfig:
    """Durable per-machine state: signed checkpoints on a compacted changelog topic."""

    enabled: bool = True
    changelog_topic: str = "anomstream.state"
    # Secrets stay out of repr() and logs.
    signing_key: str = field(default="", repr=False)
    signing_key_file: str = ""  # read the key from this file instead (Docker/Kubernetes secrets)
    previous_signing_keys: tuple[str, ...] = field(default=(), repr=False)
    checkpoint_interval_seconds: float = 5.0
    checkpoint_readings: int = 50000
    exactly_once: bool = False
    idle_ttl_seconds: float = 0.0

    _checks: ClassVar[dict[str, Any]] = {
        "changelog_topic": _non_empty,
        "checkpoint_interval_seconds": _positive,
        "checkpoint_readings": _positive,
        "idle_ttl_seconds": _non_negative,
    }


@dataclass(frozen=True)
class HttpConfig:
    host: str = "0.0.0.0"
    port: int = 9464

    _checks: ClassVar[dict[str, Any]] = {"port": lambda v: None if 0 <= v <= 65535 else "must be a port, 0..65535"}


@dataclass(frozen=True)
class ServiceConfig:
    log_level: str = "INFO"
    instance: str = ""

    _checks: ClassVar[dict[str, Any]] = {"log_level": _one_of("DEBUG", "INFO", "WARNING", "ERROR")}


@dataclass(frozen=True)
class Config:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    state: StateConfig = field(default_factory=StateConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)

    def __post_init__(self) -> None:
        a = self.alerts
        if a.clear_threshold > a.threshold:
            raise ConfigError("alerts.clear_threshold", "must be <= alerts.threshold (hysteresis)")
        if a.critical_threshold < a.threshold:
            raise ConfigError("alerts.critical_threshold", "must be >= alerts.threshold")
        if a.instant_threshold < a.threshold:
            raise ConfigError("alerts.instant_threshold", "must be >= alerts.threshold")
        k = self.kafka
        if k.heartbeat_interval_ms * 3 > k.session_timeout_ms:
            raise ConfigError(
                "kafka.heartbeat_interval_ms", "must be at most a third of kafka.session_timeout_ms"
            )
        if k.alert_topic in k.input_topics or k.dlq_topic in k.input_topics:
            raise ConfigError("kafka.input_topics", "must not contain the alert or dead-letter topic")
        st = self.state
        if st.enabled:
            # A missing key is checked where state is used (`require_signing_key`), so commands
            # that never touch state (simulate, replay) run without one.
            keys = [key for key in (st.signing_key, *st.previous_signing_keys) if key]
            if keys and min(map(len, keys)) < 16:
                raise ConfigError("state.signing_key", "keys must be at least 16 characters")
            if st.changelog_topic in k.input_topics:
                raise ConfigError("state.changelog_topic", "must not be an input topic")
        elif st.exactly_once:
            raise ConfigError("state.exactly_once", "needs state.enabled = true")

    def require_signing_key(self) -> None:
        """The service's check: state on needs a key (raised at start-up, naming the key)."""
        if self.state.enabled and not self.state.signing_key:
            raise ConfigError(
                "state.signing_key",
                "required when state.enabled is true: set ANOMSTREAM_STATE__SIGNING_KEY "
                "(a random secret of 16+ characters) or state.enabled = false",
            )

    def with_overrides(self, overrides: Mapping[str, Any]) -> Config:
        """Return a copy with dotted keys (`kafka.group_id`) replaced, validated again."""
        tree = dataclasses.asdict(self)
        for dotted, value in overrides.items():
            _set_dotted(tree, dotted, value)
        return _build(Config, tree, "")


def kafka_client_options(config: KafkaConfig) -> dict[str, Any]:
    """The kafka-python security keyword arguments of `config` (consumer, producer, admin alike).

    Only the options `security_protocol` uses are returned; unset paths are left out so
    kafka-python's defaults apply. The one place secrets are handed to the client.
    """
    options: dict[str, Any] = {"security_protocol": config.security_protocol}
    if config.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_check_hostname"] = config.ssl_check_hostname
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password"):
            if getattr(config, key):
                options[key] = getattr(config, key)
    if config.security_protocol.startswith("SASL_"):
        # kafka-python names the credentials sasl_plain_* for the SCRAM mechanisms too.
        options["sasl_mechanism"] = config.sasl_mechanism
        options["sasl_plain_username"] = config.sasl_username
        options["sasl_plain_password"] = config.sasl_password
    return options


def default_config_text() -> str:
    """The shipped default configuration file, with its comments."""
    return resources.files("anomstream.config").joinpath("anomstream.toml").read_text("utf-8")


def load_config(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the validated `Config` from defaults, `path`, `environ` and `overrides`."""
    tree: dict[str, Any] = tomllib.loads(default_config_text())
    if path is not None:
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise ConfigError("--config", f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            _merge(tree, tomllib.loads(text), "")
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from None
    for name, raw in sorted((os.environ if environ is None else environ).items()):
        if name.startswith(ENV_PREFIX) and "__" in name:
            dotted = name[len(ENV_PREFIX) :].lower().replace("__", ".")
            _set_dotted(tree, dotted, _parse_env_value(raw), source=name)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(tree, dotted, value)
    _read_secret_file(tree, "state", "signing_key")
    _read_secret_file(tree, "kafka", "sasl_password")
    return _build(Config, tree, "")


def _read_secret_file(tree: dict[str, Any], section: str, key: str) -> None:
    """`<section>.<key>_file` -> `<section>.<key>`, so a secret never has to sit in the
    environment (visible in `docker inspect`, /proc/<pid>/environ)."""
    table = tree.get(section)
    file_key = f"{key}_file"
    if not isinstance(table, dict) or not table.get(file_key):
        return
    path = table[file_key]
    if table.get(key):
        raise ConfigError(f"{section}.{file_key}", f"set {key} or {file_key}, not both")
    try:
        table[key] = Path(path).read_text("utf-8").strip()
    except OSError as exc:
        problem = f"cannot read {path}: {exc.strerror or exc}"
        raise ConfigError(f"{section}.{file_key}", problem) from None


def _require_readable(key: str, path: str) -> None:
    if not path:
        return
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror or exc}") from None


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _merge(base: dict[str, Any], extra: Mapping[str, Any], prefix: str) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict) and key != "params":
            _merge(base[key], value, f"{prefix}{key}.")
        else:
            base[key] = value


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any, source: str = "") -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            raise ConfigError(source or dotted, "unknown key")
        node = child
    node[leaf] = value


def _build(cls: type, data: Any, prefix: str) -> Any:
    """Turn a parsed TOML table into dataclass `cls`, checking every key on the way."""
    where = prefix.rstrip(".") or "<root>"
    if not isinstance(data, Mapping):
        raise ConfigError(where, f"expected a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            raise ConfigError(f"{prefix}{key}", f"unknown key (known: {', '.join(sorted(known))})")
    checks = getattr(cls, "_checks", {})
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        kwargs[key] = _coerce(hints[key], value, dotted)
        problem = checks.get(key, lambda _v: None)(kwargs[key])
        if problem:
            raise ConfigError(dotted, f"{problem} (got {value!r})")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, dotted: str) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{dotted}.")
    origin = typing.get_origin(hint)
    if origin is tuple:
        (item_hint, _ellipsis) = typing.get_args(hint)
        if isinstance(value, str) and item_hint is str:
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(dotted, f"expected a list, got {type(value).__name__}")
        return tuple(_coerce(item_hint, v, f"{dotted}[{i}]") for i, v in enumerate(value))
    if origin in (Mapping, dict) or hint is Mapping:
        if not isinstance(value, Mapping):
            raise ConfigError(dotted, f"expected a table, got {type(value).__name__}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(dotted, f"expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(dotted, f"expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(dotted, f"expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(dotted, f"expected a string, got {value!r}")
        return value
    raise ConfigError(dotted, f"unsupported type {hint!r}")  # pragma: no cover - programming error
