"""Helpers shared by the benchmarks: simulated records (for the broker, or as consumed records
for the pipeline), producing a backlog, creating topics.

The benchmarks are scripts run as `.venv/bin/python bench/<name>.py`, so `bench/` is on
`sys.path` and they import this module as `_common`.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from kafka import KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord

__all__ = ["consumed", "create_topics", "produce", "records", "sim_record"]


def records(count: int, machines: int, seed: int) -> list[tuple[bytes, bytes]]:
    """`count` simulated telemetry records as (key, value), round-robin over `machines`."""
    from anomstream.stream.simulator import Simulator

    sim = Simulator(machines=machines, seed=seed, fault_rate=2.0)
    return [(r.machine_id.encode(), orjson.dumps(r.record)) for r in sim.readings(count)]


def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], rate: float = 0.0) -> float:
    """Send `records` (at `rate` per second, or as fast as possible); returns the seconds taken."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5, batch_size=65536)
    started = time.perf_counter()
    for i, (key, value) in enumerate(records):
        if rate and i % 100 == 0:
            ahead = started + i / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()
    return time.perf_counter() - started


def create_topics(bootstrap: str, topics: list[str], partitions: int) -> None:
    from anomstream.stream.config import load_config
    from anomstream.stream.kafka_io import ensure_topics

    # Only the Kafka section matters here; state off so no signing key is needed to build it.
    config = load_config(environ={}, overrides={
        "kafka.bootstrap_servers": bootstrap, "kafka.topic_partitions": partitions, "state.enabled": False,
    })
    ensure_topics(config.kafka, topics)


def sim_record(reading: Any, *, topic: str = "bench", partition: int = 0, offset: int = 0) -> ConsumerRecord:
    """A simulator reading as the record a consumer hands the pipeline (timestamp: event time)."""
    return consumed(reading.machine_id, reading.record, reading.ts, topic=topic, partition=partition,
                    offset=offset)


def consumed(
    machine: str, record: dict[str, Any], ts: float, *, topic: str = "bench", partition: int = 0,
    offset: int = 0,
) -> ConsumerRecord:
    """A telemetry record as a consumer hands it to the pipeline: keyed by machine, timestamped
    with its event time `ts` (epoch seconds)."""
    key, value = machine.encode(), orjson.dumps(record)
    return ConsumerRecord(
        topic, partition, -1, offset, round(ts * 1000), 0, key, value, None, None,
        len(key), len(value), -1,
    )
