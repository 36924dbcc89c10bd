"""Command-line flags shared by sub-commands, and the one place they become a `Config`."""

from __future__ import annotations

import argparse
from typing import Any

from anomstream.stream.config import Config, load_config

__all__ = ["add_config_flags", "add_kafka_flags", "config_from_args"]

# flag dest -> dotted config key
_FLAG_KEYS = {
    "bootstrap_servers": "kafka.bootstrap_servers",
    "input_topic": "kafka.input_topics",
    "alert_topic": "kafka.alert_topic",
    "dlq_topic": "kafka.dlq_topic",
    "group_id": "kafka.group_id",
    "metrics_port": "http.port",
    "metrics_host": "http.host",
    "detector": "detector.name",
    "security_protocol": "kafka.security_protocol",
    "ssl_cafile": "kafka.ssl_cafile",
    "ssl_certfile": "kafka.ssl_certfile",
    "ssl_keyfile": "kafka.ssl_keyfile",
    "sasl_mechanism": "kafka.sasl_mechanism",
    "sasl_username": "kafka.sasl_username",
    "sasl_password_file": "kafka.sasl_password_file",
}


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file laid over the shipped defaults (see `anomstream config`)",
    )


def add_kafka_flags(parser: argparse.ArgumentParser, *, service: bool = True) -> None:
    """Flags operators change most. `service=False` keeps only the broker and security flags."""
    parser.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT[,...]",
        help="Kafka brokers (default: kafka.bootstrap_servers)",
    )
    _add_security_flags(parser)
    if not service:
        return
    parser.add_argument(
        "--input-topic",
        action="append",
        metavar="TOPIC",
        help="telemetry topic to consume; repeat for several (default: kafka.input_topics)",
    )
    parser.add_argument("--alert-topic", metavar="TOPIC", help="topic alerts are published to")
    parser.add_argument("--dlq-topic", metavar="TOPIC", help="dead-letter topic for bad records")
    parser.add_argument("--group-id", metavar="GROUP", help="Kafka consumer group id")
    parser.add_argument(
        "--metrics-port", type=int, metavar="PORT", help="HTTP port of /metrics, /healthz, /readyz"
    )
    parser.add_argument("--metrics-host", metavar="HOST", help="HTTP listen address")
    parser.add_argument("--detector", metavar="NAME", help="detector (see `anomstream detectors`)")


def _add_security_flags(parser: argparse.ArgumentParser) -> None:
    # No password flags: a password on the command line shows in `ps`. Passwords come from
    # the environment or a file (--sasl-password-file).
    group = parser.add_argument_group("Kafka security (see [kafka] in `anomstream config`)")
    group.add_argument(
        "--security-protocol",
        choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
        help="how clients talk to the brokers (default: kafka.security_protocol)",
    )
    group.add_argument(
        "--ssl-cafile", metavar="FILE", help="PEM CA bundle the brokers' certificates chain to"
    )
    group.add_argument("--ssl-certfile", metavar="FILE", help="PEM client certificate (mutual TLS)")
    group.add_argument("--ssl-keyfile", metavar="FILE", help="PEM private key of --ssl-certfile")
    group.add_argument(
        "--sasl-mechanism",
        choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
        help="SASL mechanism (default: kafka.sasl_mechanism)",
    )
    group.add_argument("--sasl-username", metavar="USER", help="SASL user name")
    group.add_argument(
        "--sasl-password-file",
        metavar="FILE",
        help="file holding the SASL password (or set ANOMSTREAM_KAFKA__SASL_PASSWORD)",
    )


def config_from_args(args: argparse.Namespace, **extra: Any) -> Config:
    """Defaults < --config file < ANOMSTREAM_* environment < flags < `extra` dotted keys."""
    overrides = {key: getattr(args, dest, None) for dest, key in _FLAG_KEYS.items()}
    overrides.update(extra)
    return load_config(getattr(args, "config", None), overrides=overrides)
