"""The one configuration object: defaults, a TOML file, environment overrides, CLI flags.

Built once in `main` and passed down. Layers, later wins (`anomstream.stream.config_loading`):

1. `config/anomstream.toml` shipped with the package (every key documented there);
2. the file given with `--config`;
3. environment variables `ANOMSTREAM_<SECTION>__<KEY>` (values parsed as TOML literals when they
   parse, else taken as strings: `ANOMSTREAM_KAFKA__TOPIC_PARTITIONS=6`);
4. command-line flags.

Every value is type-checked and range-checked by the pydantic model
(`anomstream.stream.config_model`), and unknown keys are errors, so a typo in a config file
fails at start-up with the key's dotted name (and a "did you mean") instead of being silently
ignored. Every problem is reported at once. Secrets are `SecretStr`: never in `repr`, logs or
`anomstream config`; `kafka_client_options` is where the Kafka ones are unwrapped.
"""

from __future__ import annotations

from typing import Any

from anomstream.stream.config_loading import default_config_text, load_config
from anomstream.stream.config_model import ENV_PREFIX, Config
from anomstream.stream.config_sections import (
    AlertsConfig,
    DetectorConfig,
    DetectorTemplate,
    HttpConfig,
    KafkaConfig,
    ServiceConfig,
    StateConfig,
    TelemetryConfig,
)

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


def kafka_client_options(config: KafkaConfig) -> dict[str, Any]:
    """The kafka-python security keyword arguments of `config` (consumer, producer, admin alike).

    Only the options `security_protocol` uses are returned; unset paths are left out so
    kafka-python's defaults apply. The one place secrets are handed to the client, as strings.
    """
    options: dict[str, Any] = {"security_protocol": config.security_protocol}
    if config.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_check_hostname"] = config.ssl_check_hostname
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if getattr(config, key):
                options[key] = getattr(config, key)
        if config.ssl_password.get_secret_value():
            options["ssl_password"] = config.ssl_password.get_secret_value()
    if config.security_protocol.startswith("SASL_"):
        # kafka-python names the credentials sasl_plain_* for the SCRAM mechanisms too.
        options["sasl_mechanism"] = config.sasl_mechanism
        options["sasl_plain_username"] = config.sasl_username
        options["sasl_plain_password"] = config.sasl_password.get_secret_value()
    return options
