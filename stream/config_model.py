"""The configuration model: `Config`, one frozen pydantic-settings model of the `[section]`
models (`anomstream.stream.config_sections`), with the checks that span sections.

Field defaults are the shipped defaults (`config/anomstream.toml` is checked against them);
`docs/configuration.md` and `config/schemas/config.schema.json` are generated from the model
(`anomstream.stream.config_docs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from anomstream.stream.config_errors import config_error, problems_from, set_dotted
from anomstream.stream.config_ops import FeedbackConfig, HealthConfig, ModesConfig, SilenceConfig
from anomstream.stream.config_sections import (
    AlertsConfig,
    DetectorConfig,
    HttpConfig,
    KafkaConfig,
    ServiceConfig,
    StateConfig,
    TelemetryConfig,
    report_problems,
)
from anomstream.stream.errors import ConfigError

__all__ = ["ENV_PREFIX", "Config", "validate_config"]

ENV_PREFIX = "ANOMSTREAM_"


class Config(BaseSettings):
    """The whole configuration; build it with `anomstream.stream.config.load_config`."""

    # The env settings are read by `config_loading`'s sources; `Config(...)` itself never looks
    # at the process environment (see settings_customise_sources).
    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
    )

    kafka: KafkaConfig = KafkaConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    detector: DetectorConfig = DetectorConfig()
    alerts: AlertsConfig = AlertsConfig()
    state: StateConfig = StateConfig()
    http: HttpConfig = HttpConfig()
    service: ServiceConfig = ServiceConfig()
    health: HealthConfig = HealthConfig()
    silence: SilenceConfig = SilenceConfig()
    feedback: FeedbackConfig = FeedbackConfig()
    modes: ModesConfig = ModesConfig()

    @property
    def side_topics(self) -> tuple[str, ...]:
        """Topics consumed next to the input: operator feedback and mode control (when enabled).
        Partitioned like the input, keyed by machine id, so a machine's messages reach the
        instance that holds its state."""
        topics = []
        if self.feedback.enabled:
            topics.append(self.feedback.topic)
        if self.modes.enabled:
            topics.append(self.modes.control_topic)
        return tuple(topics)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Layers are ordered in one place, `load_config`: constructing a Config is explicit.
        return (init_settings,)

    @model_validator(mode="after")
    def _check_across_sections(self) -> Config:
        problems = []
        a, k, st = self.alerts, self.kafka, self.state
        if a.clear_threshold > a.threshold:
            problems.append(("alerts.clear_threshold", "must be <= alerts.threshold (hysteresis)"))
        if a.critical_threshold < a.threshold:
            problems.append(("alerts.critical_threshold", "must be >= alerts.threshold"))
        if a.instant_threshold < a.threshold:
            problems.append(("alerts.instant_threshold", "must be >= alerts.threshold"))
        if k.heartbeat_interval_ms * 3 > k.session_timeout_ms:
            problems.append(
                (
                    "kafka.heartbeat_interval_ms",
                    "must be at most a third of kafka.session_timeout_ms",
                )
            )
        if k.alert_topic in k.input_topics or k.dlq_topic in k.input_topics:
            problems.append(
                ("kafka.input_topics", "must not contain the alert or dead-letter topic")
            )
        outputs = {k.alert_topic, k.dlq_topic, st.changelog_topic}
        for key, topic in (("feedback.topic", self.feedback.topic), ("modes.control_topic", self.modes.control_topic)):
            if topic in k.input_topics or topic in outputs:
                problems.append((key, "must differ from the input, alert, dead-letter and changelog topics"))
        if self.feedback.topic == self.modes.control_topic:
            problems.append(("modes.control_topic", "must differ from feedback.topic"))
        if st.enabled:
            # A missing key is checked where state is used (`require_signing_key`), so commands
            # that never touch state (simulate, replay) run without one.
            keys = [key.get_secret_value() for key in (st.signing_key, *st.previous_signing_keys)]
            if any(0 < len(key) < 16 for key in keys):
                problems.append(("state.signing_key", "keys must be at least 16 characters"))
            if st.changelog_topic in k.input_topics:
                problems.append(("state.changelog_topic", "must not be an input topic"))
        elif st.exactly_once:
            problems.append(("state.exactly_once", "needs state.enabled = true"))
        report_problems(problems)
        return self

    def require_signing_key(self) -> None:
        """The service's check: state on needs a key (raised at start-up, naming the key)."""
        if self.state.enabled and not self.state.signing_key.get_secret_value():
            raise ConfigError(
                "state.signing_key",
                "required when state.enabled is true: set ANOMSTREAM_STATE__SIGNING_KEY "
                "(a random secret of 16+ characters) or state.enabled = false",
            )

    def with_overrides(self, overrides: Mapping[str, Any]) -> Config:
        """Return a copy with dotted keys (`kafka.group_id`) replaced, validated again."""
        tree = self.model_dump()
        problems: list[tuple[str, str]] = []
        for dotted, value in overrides.items():
            set_dotted(tree, dotted, value, problems)
        return validate_config(tree, problems)


def validate_config(tree: dict[str, Any], problems: list[tuple[str, str]] | None = None) -> Config:
    """`tree` (parsed TOML layers) as a `Config`; every problem, with `problems` found earlier,
    raised at once as one `ConfigError`."""
    found = list(problems or ())
    try:
        config = Config.model_validate(tree)
    except ValidationError as exc:
        raise config_error([*found, *problems_from(exc, Config)]) from None
    if found:
        raise config_error(found)
    return config
