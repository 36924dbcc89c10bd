"""Test helpers around a real broker: produce, read a whole topic, run the service in a thread."""

from __future__ import annotations

import os
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from anomstream.stream.app import new_registry, serve
from anomstream.stream.config import Config, load_config
from anomstream.stream.kafka_io import ensure_topics
from anomstream.stream.pipeline import BatchOutput

TEST_SIGNING_KEY = "anomstream-test-signing-key"

# Short group timings: Tansu completes a first join after about session_timeout / 2.
FAST_GROUP = {"kafka.session_timeout_ms": 6000, "kafka.heartbeat_interval_ms": 1000}


def service_config(bootstrap: str, unique: str, *, changelog: bool = True, **overrides: Any) -> Config:
    """Config for one test: its own topics (created now) and group, a free HTTP port.

    Topics are created up front: a broker that auto-creates topics on first produce would
    otherwise pick its own partition count. `changelog=False` leaves the changelog to the service.
    """
    base = {
        "kafka.bootstrap_servers": bootstrap,
        "kafka.input_topics": [f"telemetry-{unique}"],
        "kafka.alert_topic": f"alerts-{unique}",
        "kafka.dlq_topic": f"dlq-{unique}",
        "kafka.group_id": f"group-{unique}",
        "kafka.topic_partitions": 2,
        "http.host": "127.0.0.1",
        "http.port": 0,
        "state.signing_key": TEST_SIGNING_KEY,
        "state.changelog_topic": f"state-{unique}",
        "feedback.topic": f"feedback-{unique}",
        "modes.control_topic": f"control-{unique}",
        # ANOMSTREAM_TEST_DETECTOR runs the broker suite against another registered detector.
        "detector.name": os.environ.get("ANOMSTREAM_TEST_DETECTOR", "default"),
        **FAST_GROUP,
    }
    base.update(overrides)
    config = load_config(environ={}, overrides=base)
    k = config.kafka
    ensure_topics(k, [*k.input_topics, k.alert_topic, k.dlq_topic, *config.side_topics])
    if changelog:
        ensure_topics(k, [config.state.changelog_topic], compacted=[config.state.changelog_topic])
    return config


def produce(
    bootstrap: str, topic: str, items: Iterable[tuple[bytes | None, bytes | None]],
    client_options: Mapping[str, Any] | None = None,
) -> int:
    """`client_options`: extra kafka-python settings, e.g. TLS for a secured broker."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **(client_options or {}))
    count = 0
    for key, value in items:
        producer.send(topic, key=key, value=value)
        count += 1
    producer.flush()
    producer.close()
    return count


def produce_sim(
    bootstrap: str, topic: str, sim: Any, count: int, client_options: Mapping[str, Any] | None = None
) -> int:
    """Produce `count` simulator readings, keyed by machine."""
    import orjson

    return produce(
        bootstrap, topic, ((r.machine_id.encode(), orjson.dumps(r.record)) for r in sim.readings(count)),
        client_options,
    )


def read_topic(
    bootstrap: str, topic: str, timeout: float = 10.0, isolation_level: str = "read_uncommitted",
    client_options: Mapping[str, Any] | None = None,
) -> list[Any]:
    """Every record currently in `topic`, in partition then offset order."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level=isolation_level,
        **(client_options or {}),
    )
    try:
        deadline = time.monotonic() + timeout
        partitions = None
        while not partitions and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                time.sleep(0.2)
        if not partitions:
            return []
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        records: list[Any] = []
        # Until the end offset is reached and a poll is empty: Tansu 0.6 reports end offsets
        # short by (last batch size - 1).
        while time.monotonic() < deadline:
            polled = consumer.poll(timeout_ms=300)
            for batch in polled.values():
                records.extend(batch)
            if not polled and all(consumer.position(tp) >= end[tp] for tp in tps):
                break
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def wait_until(condition: Callable[[], Any], timeout: float, interval: float = 0.2, what: str = "") -> Any:
    """Poll `condition` until truthy. Connection and parse errors count as "not yet"; an
    AssertionError (say, the process under test died) ends the wait at once."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except (OSError, ValueError, LookupError) as exc:  # not up yet: refused, 503, partial
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}: {last_exc}")


@dataclass
class RunningService:
    config: Config
    stop: threading.Event
    thread: threading.Thread
    outputs: list[BatchOutput] = field(default_factory=list)
    port: int = 0
    exit_code: int | None = None
    error: BaseException | None = None

    @property
    def readings(self) -> int:
        return sum(o.readings + len(o.dead_letters) for o in self.outputs)

    def http_get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_consumed(self, count: int, timeout: float = 60.0) -> None:
        wait_until(lambda: self.readings >= count or self.error, timeout, what=f"{count} records")
        if self.error:
            raise self.error


@contextmanager
def running_service(config: Config) -> Iterator[RunningService]:
    """`anomstream run` in a thread, stopped (and its exit checked) on leaving the block."""
    stop = threading.Event()
    listening = threading.Event()
    handle = RunningService(config, stop, threading.Thread())

    def on_listening(port: int) -> None:
        handle.port = port
        listening.set()

    def target() -> None:
        try:
            handle.exit_code = serve(
                config, stop=stop, registry=new_registry(),
                on_output=handle.outputs.append, on_listening=on_listening,
            )
        except BaseException as exc:  # noqa: BLE001 - surfaced to the test by wait_consumed / on exit
            handle.error = exc
            listening.set()

    handle.thread = threading.Thread(target=target, daemon=True)
    handle.thread.start()
    listening.wait(30)
    try:
        yield handle
    finally:
        stop.set()
        handle.thread.join(30)
    assert not handle.thread.is_alive(), "service did not stop within 30 s"
    if handle.error:
        raise handle.error
    assert handle.exit_code == 0


def broker_hides_aborted_transactions(bootstrap: str, topic: str) -> bool:
    """Probe: does a read_committed consumer skip a record whose transaction was aborted?

    Apache Kafka does (that is what read_committed means); Tansu 0.6 does not, which makes an
    exactly-once guarantee for alert consumers impossible to observe on it.
    """
    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"probe-{topic}")
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(topic, b"aborted", partition=0)
    producer.flush()
    producer.abort_transaction()
    producer.begin_transaction()
    producer.send(topic, b"committed", partition=0)
    producer.commit_transaction()
    producer.close()
    values = [r.value for r in read_topic(bootstrap, topic, isolation_level="read_committed")]
    return values == [b"committed"]
