"""`anomstream demo`: embedded broker + simulated machines + the service, alerts printed live.

The first thing a newcomer runs. Everything is real: Tansu speaks the Kafka protocol on a
loopback port, the simulator produces to it, the service consumes, scores and publishes alerts
exactly as `anomstream run` does. Ctrl-C (or `--duration`) stops the three in order.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from typing import TextIO

import orjson
from kafka import KafkaProducer

from anomstream.stream import signals
from anomstream.stream.alerts import OutgoingMessage
from anomstream.stream.app import serve
from anomstream.stream.broker import EmbeddedBroker, free_port
from anomstream.stream.commands.run import setup_logging
from anomstream.stream.kafka_io import ensure_topics
from anomstream.stream.options import add_config_flags, config_from_args
from anomstream.stream.pipeline import BatchOutput
from anomstream.stream.simulator import Reading, Simulator
from anomstream.stream.simulator_kafka import produce_readings

__all__ = ["format_alert", "register", "run"]

log = logging.getLogger("anomstream.demo")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="see it work: embedded broker, simulated machines, live alerts",
        description=(
            "Start an embedded Kafka-protocol broker (Tansu), simulate a fleet of machines with "
            "injected faults, run the detection service on it and print one line per alert as "
            "it fires or resolves. Metrics are served while it runs. Ctrl-C stops everything."
        ),
        epilog="example: anomstream demo --machines 8 --rate 400 --duration 120",
    )
    add_config_flags(parser)
    parser.add_argument("--bootstrap-servers", metavar="HOST:PORT", help="use this broker instead of starting one")
    parser.add_argument("--machines", type=int, default=6, help="simulated machines (default 6)")
    parser.add_argument("--rate", type=float, default=300.0, help="readings per second, all machines (default 300)")
    parser.add_argument("--fault-rate", type=float, default=3.0, help="faults per machine per 1000 readings (default 3)")
    parser.add_argument("--seed", type=int, default=7, help="simulator seed (default 7)")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (default: until Ctrl-C)")
    parser.add_argument("--metrics-port", type=int, default=9464, help="HTTP port; 0 or a busy port picks a free one")
    parser.add_argument("--verbose", action="store_true", help="show the service log too")
    parser.set_defaults(func=run)


def format_alert(message: OutgoingMessage) -> str:
    """One line per alert. Scores are tail probabilities, so the line shows how rare the peak
    reading was (p = 1 - score), which says more than a score printed as 1.00000."""
    alert = orjson.loads(message.value)
    sensors = ", ".join(s["name"] for s in alert["sensors"])
    kind = alert.get("kind", "anomaly")
    if kind == "anomaly":
        tail = 1.0 - alert["score"]
        rarity = "p<1e-15" if tail < 1e-15 else f"p={tail:.0e}"
    else:  # a sensor-health code or a silent machine: what it is says more than a score
        rarity = kind
    return (
        f"{alert['event_time'][11:23]}  {alert['status'].upper():<8}  {alert['severity']:<8}  "
        f"{alert['machine_id']:<13}  {sensors:<26}  {rarity:<8}  id {alert['alert_id'][:12]}"
    )


def _port_or_free(port: int) -> int:
    if port == 0:
        return free_port()
    try:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
        return port
    except OSError:
        return free_port()


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    setup_logging("INFO" if args.verbose else "WARNING")
    stop = signals.STOP
    with ExitStack() as stack:
        bootstrap = args.bootstrap_servers
        if not bootstrap:
            print("starting embedded Kafka-protocol broker (Tansu) ...", file=out, flush=True)
            bootstrap = stack.enter_context(EmbeddedBroker()).bootstrap_servers
        config = config_from_args(
            args,
            **{
                "kafka.bootstrap_servers": bootstrap,
                "kafka.group_id": "anomstream-demo",
                "kafka.session_timeout_ms": 6000,
                "http.host": "127.0.0.1",
                "http.port": _port_or_free(args.metrics_port),
                # The embedded broker forgets everything when the demo ends: a throwaway key.
                "state.signing_key": os.environ.get("ANOMSTREAM_STATE__SIGNING_KEY") or secrets.token_hex(16),
            },
        )
        simulator = Simulator(
            machines=args.machines, seed=args.seed, interval=args.machines / args.rate,
            fault_rate=args.fault_rate,
        )
        topic = config.kafka.input_topics[0]
        # Before the simulator writes: a broker that auto-creates topics on first produce would
        # pick its own partition count for the telemetry topic.
        ensure_topics(config.kafka, [topic])
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        stack.callback(producer.close)
        feeder = threading.Thread(
            target=_feed, args=(producer, topic, simulator, args.rate, stop, out), daemon=True,
            name="simulator",
        )
        if args.duration > 0:
            timer = threading.Timer(args.duration, stop.set)
            timer.daemon = True
            timer.start()
            stack.callback(timer.cancel)

        def on_listening(port: int) -> None:
            print(
                f"broker {bootstrap} | {args.machines} machines, {args.rate:g} readings/s -> {topic}\n"
                f"metrics http://127.0.0.1:{port}/metrics  health /healthz /readyz | Ctrl-C stops\n"
                f"models warm up for {config.detector.warmup} readings per sensor before alerting",
                file=out, flush=True,
            )
            feeder.start()

        def on_output(batch: BatchOutput) -> None:
            for message in batch.alerts:
                print(format_alert(message), file=out, flush=True)

        code = serve(config, stop=stop, on_output=on_output, on_listening=on_listening)
        stop.set()
        if feeder.is_alive():
            feeder.join(10)
        print(f"demo stopped: {simulator.readings_emitted} readings simulated, "
              f"{len(simulator.faults)} faults injected", file=out, flush=True)
        return code
    return 1  # pragma: no cover - ExitStack re-raises


def _feed(
    producer: KafkaProducer, topic: str, simulator: Simulator, rate: float,
    stop: threading.Event, out: TextIO,
) -> None:
    def announce(readings: Iterator[Reading]) -> Iterator[Reading]:
        seen = 0
        for i, reading in enumerate(readings):
            yield reading
            if i % 50 == 0:
                faults = simulator.faults
                for fault in faults[seen:]:
                    print(f"             injected  {fault.kind:<11} on {fault.machine}/{fault.sensor} "
                          f"for {fault.end_index - fault.start_index} readings", file=out, flush=True)
                seen = len(faults)

    try:
        produce_readings(producer, topic, announce(simulator.readings()), rate=rate, stop_event=stop)
    except Exception:  # the demo must not hang if the broker goes away
        log.exception("simulator stopped")
        stop.set()
