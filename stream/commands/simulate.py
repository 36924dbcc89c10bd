"""`anomstream simulate`: simulated machine telemetry with labelled faults, to any Kafka broker."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from anomstream.stream import signals
from anomstream.stream.config import KafkaConfig
from anomstream.stream.errors import BrokerUnavailable, DeliveryError
from anomstream.stream.kafka_io import common_client_config
from anomstream.stream.options import add_config_flags, add_kafka_flags, config_from_args
from anomstream.stream.simulator import DEFAULT_FAULT_RATE, FAULT_KINDS, SENSORS, Simulator
from anomstream.stream.simulator_kafka import produce_readings

__all__ = ["register", "run"]

_DESCRIPTION = f"""\
Publish simulated telemetry of a fleet of machines to a Kafka topic.

Each machine runs its own duty cycle; its sensors follow the load with noise, a thermal lag
and a slow ambient drift:
  {", ".join(SENSORS)}
After a warm-up, faults are injected at random and can be written to a labels file to score
detection against:
  {", ".join(FAULT_KINDS)}
Readings are JSON values keyed by machine id. The same --seed gives the same readings and faults.
"""

_EPILOG = """\
examples:
  anomstream simulate --bootstrap-servers localhost:9092 --count 20000 --rate 0 \\
      --labels labels.json
  anomstream simulate --machines 20 --rate 200 --fault-rate 4     # until Ctrl-C
  anomstream simulate --clean --count 50000 --start-time 2026-11-24T09:00:00Z --rate 0
"""

# Waiting this long for a first broker answer is plenty on a LAN, and short enough that a wrong
# --bootstrap-servers fails while the operator is still looking.
_BOOTSTRAP_TIMEOUT_MS = 10000


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="publish simulated machine telemetry with labelled faults",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_kafka_flags(parser, service=False)
    add_config_flags(parser)
    parser.add_argument(
        "--topic",
        metavar="TOPIC",
        help="topic to publish to (default: first of kafka.input_topics)",
    )
    parser.add_argument(
        "--machines", type=_positive_int, default=5, metavar="N", help="machines (default: 5)"
    )
    parser.add_argument(
        "--count",
        type=_positive_int,
        metavar="N",
        help="readings to send over all machines, then stop (default: until Ctrl-C)",
    )
    parser.add_argument(
        "--rate",
        type=_non_negative_float,
        default=50.0,
        metavar="PER_S",
        help="readings per second over all machines, 0 = as fast as possible (default: 50)",
    )
    faults = parser.add_mutually_exclusive_group()
    faults.add_argument(
        "--fault-rate",
        type=_non_negative_float,
        default=DEFAULT_FAULT_RATE,
        metavar="F",
        help=f"expected faults per machine per 1000 readings (default: {DEFAULT_FAULT_RATE:g})",
    )
    faults.add_argument("--clean", action="store_true", help="inject no faults")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--labels",
        metavar="FILE",
        help="write the injected faults as JSON to FILE at the end (also on Ctrl-C)",
    )
    parser.add_argument(
        "--start-time",
        type=_start_time,
        default="now",
        metavar="ISO|now",
        help="event time of the first reading, ISO-8601 (UTC if no offset) (default: now)",
    )
    parser.add_argument(
        "--interval",
        type=_positive_float,
        default=1.0,
        metavar="SECONDS",
        help="event time between two readings of one machine (default: 1.0)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    topic = args.topic or config.kafka.input_topics[0]
    simulator = Simulator(
        machines=args.machines,
        seed=args.seed,
        interval=args.interval,
        start_time=None if args.start_time == "now" else args.start_time,
        fault_rate=0.0 if args.clean else args.fault_rate,
    )
    producer = _connect(config.kafka)
    until = f"{args.count} readings" if args.count else "until Ctrl-C"
    print(
        f"simulate: {args.machines} machines -> '{topic}' on {config.kafka.bootstrap_servers}, "
        f"{_rate_text(args.rate)}, {until}",
        file=sys.stderr,
    )
    stop = signals.STOP
    started = time.monotonic()
    try:
        sent = produce_readings(
            producer, topic, simulator.readings(args.count), rate=args.rate, stop_event=stop
        )
    except KafkaError as exc:
        raise DeliveryError(f"sending to '{topic}' failed: {exc}") from exc
    finally:
        # Labels first: they are local and quick, and a second Ctrl-C may cut the close short.
        if args.labels:
            simulator.write_labels(args.labels)
        producer.close()
    elapsed = max(time.monotonic() - started, 1e-9)
    labels = args.labels or "not written (--labels FILE)"
    print(
        f"simulate: sent {sent} readings to '{topic}' in {elapsed:.1f}s ({sent / elapsed:.0f}/s), "
        f"{len(simulator.faults)} faults injected, labels: {labels}"
    )
    return 0


def _connect(kafka: KafkaConfig) -> KafkaProducer:
    try:
        return KafkaProducer(
            **{**common_client_config(kafka), "client_id": f"{kafka.client_id}-simulate"},
            acks="all",
            linger_ms=kafka.producer_linger_ms,
            bootstrap_timeout_ms=_BOOTSTRAP_TIMEOUT_MS,
        )
    except KafkaTimeoutError as exc:
        raise BrokerUnavailable(
            f"no Kafka broker answered at {kafka.bootstrap_servers} "
            f"within {_BOOTSTRAP_TIMEOUT_MS / 1000:g}s"
        ) from exc


def _rate_text(rate: float) -> str:
    return f"{rate:g} readings/s" if rate else "as fast as possible"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _start_time(text: str) -> float | str:
    if text == "now":
        return text
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected ISO-8601 such as 2026-11-24T09:00:00Z, or 'now'; got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
