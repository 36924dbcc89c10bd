"""`anomstream run`: the detection service."""

from __future__ import annotations

import argparse
import logging

from anomstream.stream import signals
from anomstream.stream.app import serve
from anomstream.stream.log_throttle import KafkaLogThrottle
from anomstream.stream.options import add_config_flags, add_kafka_flags, config_from_args

__all__ = ["register", "run", "setup_logging"]


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    if level != "DEBUG":  # debugging the client wants every line
        throttle = KafkaLogThrottle()
        for handler in logging.getLogger().handlers:
            handler.addFilter(throttle)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the detection service",
        description=(
            "Consume telemetry from Kafka, score every reading with its machine/sensor model, "
            "publish alerts and dead letters, serve /metrics, /healthz and /readyz. "
            "Configuration: shipped defaults < --config FILE < ANOMSTREAM_<SECTION>__<KEY> "
            "environment variables < flags. SIGTERM/SIGINT finish the batch, commit and exit 0."
        ),
        epilog="example: anomstream run --bootstrap-servers kafka:9092 --input-topic telemetry",
    )
    add_config_flags(parser)
    add_kafka_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    setup_logging(config.service.log_level)
    stop = signals.STOP
    return serve(config, stop=stop)
