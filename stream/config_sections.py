"""The `[section]` models of the configuration: one frozen pydantic model each, every key typed
and checked. Each field's docstring is its documentation (docs/configuration.md is generated
from them, `anomstream.stream.config_docs`).

Values are strict: a string is never silently read as a number or a boolean, so `"3"` in a TOML
file is an error, not 3. Environment variables are parsed before they get here
(`anomstream.stream.config_loading`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)
from pydantic_core import PydanticCustomError

from anomstream.detectors.policy import AlertPolicy

__all__ = [
    "AlertsConfig",
    "DetectorConfig",
    "DetectorTemplate",
    "HttpConfig",
    "KafkaConfig",
    "ServiceConfig",
    "StateConfig",
    "TelemetryConfig",
    "report_problems",
]


def _split_commas(value: Any) -> Any:
    # `ANOMSTREAM_KAFKA__INPUT_TOPICS=a,b` and `--input-topic a,b` read as lists.
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _readable(path: str) -> str:
    if path:
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    return path


def _unit_interval(value: float) -> float:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"must be in (0, 1] (got {value!r})")
    return value


NonEmptyStr = Annotated[StrictStr, Field(min_length=1)]
PositiveInt = Annotated[StrictInt, Field(gt=0)]
NonNegativeInt = Annotated[StrictInt, Field(ge=0)]
PositiveFloat = Annotated[StrictFloat, Field(gt=0)]
NonNegativeFloat = Annotated[StrictFloat, Field(ge=0)]
UnitInterval = Annotated[
    StrictFloat,
    AfterValidator(_unit_interval),
    Field(json_schema_extra={"exclusiveMinimum": 0, "maximum": 1}),
]
StrList = Annotated[tuple[StrictStr, ...], BeforeValidator(_split_commas)]
SecretList = Annotated[tuple[SecretStr, ...], BeforeValidator(_split_commas)]
ReadableFile = Annotated[StrictStr, AfterValidator(_readable)]
Params = dict[StrictStr, Any]


class _Section(BaseModel):
    # Frozen: the config is built once and shared; unknown keys are typos, never ignored.
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


def report_problems(problems: list[tuple[str, str]]) -> None:
    """Report every cross-field problem of a section at once (keys relative to the section)."""
    if problems:
        raise PydanticCustomError("config_problems", "{problems}", {"problems": problems})


class KafkaConfig(_Section):
    """Brokers, topics, consumer and producer tuning, TLS and SASL."""

    bootstrap_servers: NonEmptyStr = "localhost:9092"
    """Kafka brokers, `host:port[,host:port...]`."""
    input_topics: Annotated[StrList, Field(min_length=1)] = ("telemetry",)
    """Telemetry topics to consume (a list, or `a,b` in the environment)."""
    alert_topic: NonEmptyStr = "anomstream.alerts"
    """Topic alerts are published to."""
    dlq_topic: NonEmptyStr = "anomstream.dlq"
    """Dead-letter topic: records that cannot be used, with the reason in a header."""
    group_id: NonEmptyStr = "anomstream"
    """Kafka consumer group id."""
    client_id: StrictStr = "anomstream"
    """Client id sent to the brokers (shows in broker logs and quotas)."""
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    """Where a group with no committed offset starts."""
    session_timeout_ms: PositiveInt = 10000
    """Consumer group session timeout."""
    heartbeat_interval_ms: PositiveInt = 1000
    """Consumer heartbeat interval; at most a third of `session_timeout_ms`."""
    max_poll_records: PositiveInt = 500
    """Most records one poll returns: one batch. At the default detectors (~1,300 five-sensor
    readings per second per core) 500 take ~0.4 s, so checkpoints, offset commits and a clean
    stop are never more than a batch away; larger batches only amortise a poll's small cost."""
    poll_timeout_ms: NonNegativeInt = 200
    """How long one poll waits for records."""
    fetch_max_wait_ms: NonNegativeInt = 100
    """Broker-side wait for data: bounds end-to-end latency at low rates."""
    create_topics: StrictBool = True
    """Create missing topics at start-up (false: none, the changelog included)."""
    topic_partitions: PositiveInt = 3
    """Partitions of the input, alert and dead-letter topics anomstream creates (the changelog
    always gets as many as the largest input topic)."""
    producer_linger_ms: NonNegativeInt = 5
    """Producer batching delay."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """How clients talk to the brokers: TLS with SSL / SASL_SSL, SASL with SASL_*."""
    startup_timeout_seconds: PositiveFloat = 60.0
    """How long `anomstream run` waits for the broker at start before exiting."""
    ssl_cafile: ReadableFile = ""
    """PEM CA bundle that signs the brokers' certificates ("" = the system's)."""
    ssl_certfile: ReadableFile = ""
    """PEM client certificate, for mutual TLS ("" = none)."""
    ssl_keyfile: ReadableFile = ""
    """PEM private key of `ssl_certfile` ("" = none)."""
    ssl_password: SecretStr = SecretStr("")
    """Secret: the password of `ssl_keyfile`."""
    ssl_check_hostname: StrictBool = True
    """The broker certificate must name the host connected to."""
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    """SASL mechanism, used when `security_protocol` is SASL_PLAINTEXT or SASL_SSL."""
    sasl_username: StrictStr = ""
    """SASL user name (required with SASL_*)."""
    sasl_password: SecretStr = SecretStr("")
    """Secret: the SASL password (required with SASL_*, or use `sasl_password_file`)."""
    sasl_password_file: StrictStr = ""
    """Read `sasl_password` from this file instead (Docker/Kubernetes secret)."""

    @model_validator(mode="after")
    def _check_security(self) -> KafkaConfig:
        problems = []
        if self.security_protocol.startswith("SASL_"):
            needed = f"required when security_protocol is {self.security_protocol}"
            if not self.sasl_username:
                problems.append(("sasl_username", needed))
            if not self.sasl_password.get_secret_value():
                problems.append(
                    (
                        "sasl_password",
                        f"{needed}: set ANOMSTREAM_KAFKA__SASL_PASSWORD or sasl_password_file",
                    )
                )
        if self.ssl_password.get_secret_value() and not self.ssl_keyfile:
            problems.append(("ssl_password", "needs kafka.ssl_keyfile (it is that key's password)"))
        report_problems(problems)
        return self


class TelemetryConfig(_Section):
    """How an input record (JSON) is read."""

    machine_field: NonEmptyStr = "machine_id"
    """Field of the machine id; falls back to the record key when absent."""
    timestamp_field: NonEmptyStr = "ts"
    """Field of the timestamp: ISO-8601 string or epoch seconds / milliseconds."""
    sensors_field: NonEmptyStr = "sensors"
    """Field of the object of sensor name -> number."""
    timestamp_unit: Literal["auto", "iso", "s", "ms"] = "auto"
    """How timestamps are read."""
    max_record_bytes: PositiveInt = 65536
    """Larger records go to the dead-letter topic."""


class DetectorTemplate(_Section):
    """A per-entity override: the first template whose patterns match picks the detector."""

    name: NonEmptyStr = "default"
    """Detector of the matching entities (see `anomstream detectors`)."""
    machine: StrictStr = "*"
    """Shell-style pattern of machine ids."""
    sensor: StrictStr = "*"
    """Shell-style pattern of sensor names."""
    params: Params = {}
    """Keyword arguments of the detector."""


class DetectorConfig(_Section):
    """The online models: which detector, one per sensor or per machine, per-entity overrides."""

    name: NonEmptyStr = "default"
    """Detector of every entity no template matches (see `anomstream detectors`)."""
    entity: Literal["sensor", "machine"] = "sensor"
    """sensor: one model per machine and sensor; machine: one model per machine."""
    warmup: NonNegativeInt = 150
    """Readings per entity that are learned but never alert."""
    max_entities: PositiveInt = 100000
    """Most live models; the least recently seen are evicted beyond."""
    max_sensors_per_machine: PositiveInt = 100
    """Most sensors of one machine; a reading that would add more is dead-lettered
    (`too_many_sensors`). A machine's state is one changelog record, which Kafka caps at 1 MB by
    default (producer max_request_size, broker message.max.bytes): a learned default-detector
    sensor takes about 5.7 KB, and the machine-wide `relations` model two p x p float matrices
    (16 p² bytes), so 100 sensors stay near 730 KB. Heavier detectors need a lower cap."""
    params: Params = {}
    """Keyword arguments of the detector."""
    machine_model: str = "relations"
    """Machine-wide model next to the per-sensor models (`entity = "sensor"` only): it sees
    every sensor of a reading at once and attributes its score to them, so it catches faults
    that break the relations between sensors while each stays in its range. Empty: none."""
    machine_params: Params = {}
    """Keyword arguments of the machine-wide model."""
    templates: tuple[DetectorTemplate, ...] = ()
    """Per-entity overrides, `[[detector.templates]]`, first match wins."""


class AlertsConfig(_Section):
    """When scores become alerts: `anomstream.detectors.policy.AlertPolicy`'s parameters."""

    threshold: UnitInterval = AlertPolicy.threshold
    """Score at or above which a reading is anomalous (0.99999 ~ a 1-in-100,000 reading)."""
    critical_threshold: UnitInterval = AlertPolicy.critical_threshold
    """Peak score that makes an alert critical."""
    instant_threshold: UnitInterval = AlertPolicy.instant_threshold
    """One reading this extreme fires at once (short spikes), whatever `min_run`, if the
    machine-wide model, when it scored the reading, confirms it (`confirm_threshold`)."""
    confirm_threshold: UnitInterval = AlertPolicy.confirm_threshold
    """The machine-wide model's score that confirms a single reading at `instant_threshold`
    (0.99: a 1-in-100 reading to that model)."""
    min_run: PositiveInt = AlertPolicy.min_run
    """Consecutive anomalous readings before an alert fires."""
    clear_threshold: UnitInterval = AlertPolicy.clear_threshold
    """Hysteresis: a firing alert clears only when the models implicating its sensors score
    below this."""
    clear_run: PositiveInt = AlertPolicy.clear_run
    """Consecutive clear readings before it resolves."""
    cooldown: NonNegativeInt = AlertPolicy.cooldown
    """Readings after a resolve before the machine may fire again."""


class StateConfig(_Section):
    """Durable per-machine state: signed checkpoints on a compacted changelog topic."""

    enabled: StrictBool = True
    """Checkpoint per-machine detector and alert state, restore it on partition assignment."""
    changelog_topic: NonEmptyStr = "anomstream.state"
    """Compacted topic of the checkpoints, partitioned like the input."""
    signing_key: SecretStr = SecretStr("")
    """Secret: HMAC-SHA256 key (16+ characters) signing every checkpoint; required when enabled."""
    signing_key_file: StrictStr = ""
    """Read `signing_key` from this file instead (Docker/Kubernetes secret)."""
    previous_signing_keys: SecretList = ()
    """Secrets: keys still accepted when verifying, during a key rotation."""
    checkpoint_interval_seconds: PositiveFloat = 5.0
    """Seconds between checkpoints; input offsets are committed at checkpoints only."""
    checkpoint_readings: PositiveInt = 50000
    """... or after this many readings, whichever comes first."""
    exactly_once: StrictBool = False
    """Kafka transactions: alerts, state and offsets commit together."""
    idle_ttl_seconds: NonNegativeFloat = 0.0
    """Evict machines unseen this long (0 = never); their state is kept."""


class HttpConfig(_Section):
    """The HTTP endpoints: /metrics, /healthz, /readyz."""

    host: StrictStr = "0.0.0.0"
    """Listen address of /metrics, /healthz, /readyz."""
    port: Annotated[StrictInt, Field(ge=0, le=65535)] = 9464
    """Listen port (0 = any free port)."""


class ServiceConfig(_Section):
    """Logging and the instance name."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Log level."""
    instance: StrictStr = ""
    """Instance name in alerts' ce_source (default: the host name)."""
