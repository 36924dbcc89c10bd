"""End-to-end benchmark through a real broker: anomstream vs the client's ceiling vs a naive loop.

Three consumers read the *same* simulated telemetry records from the broker, one after the other,
each in its own process (so none inherits another's warm caches or GIL contention):

- `bare`: kafka-python consumer that only polls and JSON-decodes — the client's ceiling;
- `naive`: the afternoon version — poll, json.loads, one River HalfSpaceTrees per sensor
  (default parameters), produce an alert whenever a score exceeds 0.9;
- `service`: anomstream's Service + Pipeline with the configured detector (default config).

Two phases per consumer:

1. throughput: drain a backlog of N pre-produced records (time-boxed), readings/s;
2. latency: a producer streams the same records at a fixed rate while the consumer runs;
   latency = (time the reading's alert decision is done) - (Kafka record timestamp).

Run: `.venv/bin/python bench/e2e.py` (starts an embedded Tansu) or `--bootstrap-servers HOST:PORT`.
Prints a table; never asserts on timings.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import numpy as np
import orjson
from _common import create_topics as _create  # bench/ is on sys.path when run as a script
from _common import produce as _produce
from _common import records as _records
from kafka import KafkaConsumer, KafkaProducer

ROLES = ("bare", "naive", "service")


# ----------------------------------------------------------------------------- consumer roles


def _consumer(bootstrap: str, topic: str, group: str) -> KafkaConsumer:
    return KafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
        enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=1000,
        max_poll_records=2000,
    )


def _run_role(role: str, bootstrap: str, topic: str, expected: int, seconds: float) -> dict[str, Any]:
    """Consume `expected` records (or stop after `seconds` of consuming); report rate and latency."""
    group = f"bench-{role}-{uuid.uuid4().hex[:8]}"
    handle = _ROLE_SETUP[role](bootstrap, topic, group)
    consumer = handle["consumer"]
    latencies: list[np.ndarray] = []
    consumed = 0
    first = None
    while consumed < expected:
        polled = consumer.poll(timeout_ms=200)
        records = [r for batch in polled.values() for r in batch]
        if not records:
            if first is not None and time.perf_counter() - first > seconds:
                break
            continue
        if first is None:
            first = time.perf_counter()
        handle["process"](records)
        done_ms = time.time() * 1000.0
        latencies.append(done_ms - np.fromiter((r.timestamp for r in records), float, len(records)))
        consumed += len(records)
        if time.perf_counter() - first > seconds:
            break
    elapsed = time.perf_counter() - (first or time.perf_counter())
    handle["close"]()
    lat = np.concatenate(latencies) / 1000.0 if latencies else np.array([np.nan])
    return {
        "role": role, "consumed": consumed, "seconds": elapsed,
        "rate": consumed / elapsed if elapsed else 0.0,
        "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
        "alerts": handle.get("alerts", lambda: 0)(),
    }


def _setup_bare(bootstrap: str, topic: str, group: str) -> dict[str, Any]:
    consumer = _consumer(bootstrap, topic, group)
    loads = orjson.loads

    def process(records: list[Any]) -> None:
        for record in records:
            loads(record.value)
        consumer.commit()

    return {"consumer": consumer, "process": process, "close": consumer.close}


def _setup_naive(bootstrap: str, topic: str, group: str) -> dict[str, Any]:
    from river import anomaly

    consumer = _consumer(bootstrap, topic, group)
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    models: dict[tuple[str, str], Any] = {}
    sent = [0]

    def process(records: list[Any]) -> None:
        for record in records:
            doc = json.loads(record.value)
            for sensor, value in doc["sensors"].items():
                key = (doc["machine_id"], sensor)
                model = models.get(key)
                if model is None:
                    model = models[key] = anomaly.HalfSpaceTrees(seed=42)
                score = model.score_one({"x": value})
                model.learn_one({"x": value})
                if score > 0.9:
                    producer.send(f"{topic}-naive-alerts", json.dumps({"machine": doc["machine_id"], "sensor": sensor, "score": score}).encode())
                    sent[0] += 1
        consumer.commit()

    def close() -> None:
        producer.flush()
        producer.close()
        consumer.close()

    return {"consumer": consumer, "process": process, "close": close, "alerts": lambda: sent[0]}


DETECTOR = {"name": "default"}  # set from --detector in the child process


def _setup_service(bootstrap: str, topic: str, group: str) -> dict[str, Any]:
    """anomstream's Service wired as `anomstream.stream.app.serve` wires it: checkpoints on (default)."""
    from prometheus_client import CollectorRegistry

    from anomstream.stream.checkpoint import Checkpointer, changelog_reader
    from anomstream.stream.config import load_config
    from anomstream.stream.http import Health
    from anomstream.stream.kafka_io import ensure_topics, make_consumer, make_producer
    from anomstream.stream.metrics import Metrics
    from anomstream.stream.pipeline import Pipeline
    from anomstream.stream.service import Service

    config = load_config(overrides={
        "kafka.bootstrap_servers": bootstrap, "kafka.input_topics": [topic], "kafka.group_id": group,
        "kafka.alert_topic": f"{topic}-alerts", "kafka.dlq_topic": f"{topic}-dlq",
        "kafka.session_timeout_ms": 6000, "detector.name": DETECTOR["name"],
        "state.changelog_topic": f"{topic}-{group}-state", "state.signing_key": "bench-signing-key-0123456789",
    })
    ensure_topics(config.kafka, [config.state.changelog_topic], compacted=[config.state.changelog_topic])
    metrics = Metrics(CollectorRegistry())
    pipeline = Pipeline(config, metrics=metrics)
    producer = make_producer(config.kafka)
    alerts = [0]

    def count(out: Any) -> None:
        alerts[0] += len(out.alerts)

    service = Service(
        config, consumer_factory=lambda listener: make_consumer(config.kafka, listener=listener),
        producer=producer, pipeline=pipeline, metrics=metrics, health=Health(), on_output=count,
        checkpointer=Checkpointer(config, store=pipeline.models, producer=producer, metrics=metrics,
                                  reader_factory=changelog_reader(config)),
    )
    return {"consumer": service.consumer, "process": service.process, "close": service.close,
            "alerts": lambda: alerts[0]}


_ROLE_SETUP = {"bare": _setup_bare, "naive": _setup_naive, "service": _setup_service}


# ----------------------------------------------------------------------------- orchestration


def _child(role: str, bootstrap: str, topic: str, expected: int, seconds: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--role", role, "--bootstrap-servers", bootstrap, "--topic", topic,
         "--expected", str(expected), "--seconds", str(seconds), "--detector", DETECTOR["name"]],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap-servers")
    parser.add_argument("--records", type=int, default=200_000, help="backlog size (default 200,000)")
    parser.add_argument("--machines", type=int, default=50)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--rate", type=float, default=5000.0, help="live-phase produce rate, readings/s")
    parser.add_argument("--live-seconds", type=float, default=15.0)
    parser.add_argument("--max-seconds", type=float, default=40.0, help="time box per drain")
    parser.add_argument("--roles", default=",".join(ROLES))
    parser.add_argument("--detector", default="default", help="anomstream detector for the service role")
    parser.add_argument("--role", choices=ROLES, help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--expected", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    DETECTOR["name"] = args.detector
    if args.role:  # child process: one consumer role
        print(json.dumps(_run_role(args.role, args.bootstrap_servers, args.topic, args.expected, args.seconds)))
        return 0

    from contextlib import ExitStack

    from anomstream.stream.broker import EmbeddedBroker

    with ExitStack() as stack:
        bootstrap = args.bootstrap_servers or stack.enter_context(EmbeddedBroker()).bootstrap_servers
        records = _records(args.records, args.machines, seed=1)
        backlog = f"bench-backlog-{uuid.uuid4().hex[:6]}"
        _create(bootstrap, [backlog], args.partitions)
        produce_s = _produce(bootstrap, backlog, records)
        print(f"service detector: {args.detector}")
        print(f"broker {bootstrap}: {len(records):,} records ({args.machines} machines x 5 sensors, "
              f"{np.mean([len(v) for _, v in records]):.0f} B each) produced in {produce_s:.1f} s", flush=True)
        results = []
        live_count = int(args.rate * args.live_seconds)
        for role in args.roles.split(","):
            drain = _child(role, bootstrap, backlog, len(records), args.max_seconds)
            live_topic = f"bench-live-{role}-{uuid.uuid4().hex[:6]}"
            _create(bootstrap, [live_topic], args.partitions)
            holder: dict[str, Any] = {}
            consumer = threading.Thread(target=lambda: holder.update(
                _child(role, bootstrap, live_topic, live_count, args.live_seconds + 20)))
            consumer.start()
            time.sleep(4.0)  # let the group join before the stream starts
            _produce(bootstrap, live_topic, records[:live_count], rate=args.rate)
            consumer.join()
            results.append((role, drain, holder))
            print(f"  {role:<8} drain {drain['rate']:>9,.0f} readings/s ({drain['consumed']:,} in {drain['seconds']:.1f} s) | "
                  f"live @ {args.rate:,.0f}/s: p50 {holder['p50'] * 1000:,.1f} ms, p99 {holder['p99'] * 1000:,.1f} ms "
                  f"({holder['consumed']:,} read) | alerts {drain['alerts']:,}", flush=True)
        by_role = {role: drain for role, drain, _ in results}
        if "bare" in by_role and "service" in by_role:
            print(f"service / bare  throughput: {by_role['service']['rate'] / by_role['bare']['rate']:.2f}")
        if "naive" in by_role and "service" in by_role:
            print(f"service / naive throughput: {by_role['service']['rate'] / by_role['naive']['rate']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
