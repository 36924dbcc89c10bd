"""Any topic layout on a real broker: the changelog follows the input's partitions.

Input topics are created by the test, as a user would, before the service starts, and the
changelog does not exist yet: the service creates it with as many partitions as the largest
input topic. Each layout is run, stopped, fed more readings and run again: the second run
restores every machine (no second warm-up) and every record is consumed exactly once.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from anomstream.stream.app import new_registry, serve
from anomstream.stream.checkpoint import Checkpointer, changelog_reader
from anomstream.stream.config import Config
from anomstream.stream.errors import TopicLayoutError
from anomstream.stream.kafka_io import ensure_topics, make_producer, partition_counts
from anomstream.stream.metrics import Metrics
from anomstream.stream.pipeline import Pipeline
from anomstream.stream.simulator import Simulator
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka_helpers import RunningService, produce, running_service, service_config, wait_until
from process_helpers import ServiceProcess, committed
from prometheus_client import CollectorRegistry

pytestmark = pytest.mark.broker

MACHINES_PER_PARTITION = 2
FIRST_RUN, SECOND_RUN = 12, 8  # readings per machine in each run


def _layout(kafka_broker: str, unique: str, sizes: tuple[int, ...], **overrides: Any) -> Config:
    """Input topics of `sizes` partitions, created now as a user would; no changelog yet."""
    inputs = {f"telemetry-{unique}-{i}": n for i, n in enumerate(sizes)}
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker)
    try:
        admin.create_topics([NewTopic(topic, n, 1) for topic, n in inputs.items()])
    finally:
        admin.close()
    return service_config(
        kafka_broker, unique, changelog=False, **{"kafka.input_topics": list(inputs), **overrides}
    )


def _produce(config: Config, sizes: tuple[int, ...], per_machine: int, seed: int) -> tuple[int, int]:
    """`per_machine` readings of each machine; returns (records sent, machines).

    Every partition of every topic gets MACHINES_PER_PARTITION machines, and each machine lives
    on one topic only (the rule for several input topics, see `anomstream.stream.assignor`).
    """
    producer = KafkaProducer(bootstrap_servers=config.kafka.bootstrap_servers, acks="all")
    sent = machines = 0
    for index, (topic, n) in enumerate(zip(config.kafka.input_topics, sizes, strict=True)):
        sim = Simulator(machines=n * MACHINES_PER_PARTITION, seed=seed + index, fault_rate=0)
        partition_of = {m: j % n for j, m in enumerate(sim.machine_ids)}
        machines += len(partition_of)
        for reading in sim.readings(len(partition_of) * per_machine):
            machine = f"t{index}.{reading.machine_id}"
            value = orjson.dumps({**reading.record, "machine_id": machine})
            partition = partition_of[reading.machine_id]
            producer.send(topic, key=machine.encode(), value=value, partition=partition)
            sent += 1
    producer.flush()
    producer.close()
    return sent, machines


def _sample(metrics: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@pytest.mark.parametrize("sizes", [(1,), (4,), (6,), (2, 5)], ids=["1", "4", "6", "2+5"])
def test_state_survives_a_restart_on_any_layout(
    kafka_broker: str, unique: str, sizes: tuple[int, ...]
) -> None:
    config = _layout(kafka_broker, unique, sizes)
    group, changelog = config.kafka.group_id, config.state.changelog_topic

    first, machines = _produce(config, sizes, FIRST_RUN, seed=0)
    with running_service(config) as service:
        service.wait_consumed(first)
        metrics = service.http_get("/metrics")[1]
    assert partition_counts(config.kafka, [changelog]) == {changelog: max(sizes)}
    assert service.readings == first
    created = _sample(metrics, "anomstream_models_created_total")
    assert created >= machines  # one model per sensor, or per machine (machine-wide detectors)
    assert _sample(metrics, "anomstream_state_restored_total") == 0
    assert committed(kafka_broker, group) == first

    second, _ = _produce(config, sizes, SECOND_RUN, seed=100)
    with running_service(config) as service:
        service.wait_consumed(second)
        metrics = service.http_get("/metrics")[1]
    # Every machine came back from the changelog: no model created, none warming up again.
    assert _sample(metrics, "anomstream_restore_records_total") >= machines
    assert _sample(metrics, "anomstream_state_restored_total") == machines
    assert _sample(metrics, "anomstream_models_created_total") == 0
    # Exactly once across both runs: nothing lost, nothing replayed after the clean stop.
    assert service.readings == second
    assert sum(o.skipped for o in service.outputs) == 0
    assert committed(kafka_broker, group) == first + second


def _small_changelog(kafka_broker: str, unique: str) -> Config:
    """Input of 4 partitions, an existing changelog of 2."""
    config = _layout(kafka_broker, unique, (4,))
    changelog = config.state.changelog_topic
    ensure_topics(config.kafka, [changelog], compacted=[changelog], partitions={changelog: 2})
    return config


def test_a_changelog_with_too_few_partitions_stops_at_start_with_the_fix(
    kafka_broker: str, unique: str
) -> None:
    config = _small_changelog(kafka_broker, unique)
    changelog, topic = config.state.changelog_topic, config.kafka.input_topics[0]
    with ServiceProcess(config) as service:
        assert service.process is not None
        code = service.process.wait(60)
        output = service.output()
    assert code == 78, output  # EX_CONFIG
    assert f"changelog topic '{changelog}' has 2 partitions but input topic '{topic}' has 4" in output
    assert f"--alter --topic {changelog} --partitions 4" in output
    assert "Traceback" not in output
    # Nothing was changed behind the operator's back.
    assert partition_counts(config.kafka, [changelog]) == {changelog: 2}


def test_without_create_topics_a_missing_changelog_stops_with_the_create_command(
    kafka_broker: str, unique: str
) -> None:
    config = _layout(kafka_broker, unique, (3,), **{"kafka.create_topics": False})
    command = r"--create --topic \S+ --partitions 3 --config cleanup.policy=compact"
    with pytest.raises(TopicLayoutError, match=command):
        serve(config, stop=threading.Event(), registry=new_registry())
    assert partition_counts(config.kafka, [config.state.changelog_topic]) == {}


@contextmanager
def _checkpointer(config: Config) -> Iterator[Checkpointer]:
    """A service's checkpointer on the real changelog, without the service around it."""
    metrics = Metrics(CollectorRegistry())
    producer = make_producer(config.kafka)
    try:
        yield Checkpointer(
            config, store=Pipeline(config, metrics=metrics).models, producer=producer,
            metrics=metrics, reader_factory=changelog_reader(config),
        )
    finally:
        producer.close()


def test_an_input_partition_beyond_the_changelog_stops_the_restore_with_the_fix(
    kafka_broker: str, unique: str
) -> None:
    # Partitions added to an input while running: its new partition 3 has no changelog partition.
    config = service_config(kafka_broker, unique)  # input and changelog of 2 partitions
    expected = r"has 2 partitions but input partition 3 was assigned.*--partitions 4"
    with _checkpointer(config) as checkpointer, pytest.raises(TopicLayoutError, match=expected):
        checkpointer.restore([1, 3])


def test_a_foreign_changelog_record_with_a_non_utf8_key_is_skipped_on_restore(
    kafka_broker: str, unique: str
) -> None:
    """Anyone who can write to the changelog can write anything: such a record must not stop
    every restore (and so every assignment) of its partition."""
    config = service_config(kafka_broker, unique)
    topic = config.state.changelog_topic
    produce(kafka_broker, topic, [(b"\xff\xfe", b"junk"), (None, b"keyless"), (b"ok", None)])
    with _checkpointer(config) as checkpointer:
        assert checkpointer.restore([0, 1]) == 0


def test_two_instances_hold_partition_p_of_both_topics_together(
    kafka_broker: str, unique: str
) -> None:
    # The range assignor would give a-1 to one instance and b-1 to the other.
    sizes = (2, 5)
    config = _layout(kafka_broker, unique, sizes)
    with running_service(config) as a, running_service(config) as b:
        def assigned(service: RunningService) -> float:
            return _sample(service.http_get("/metrics")[1], "anomstream_partitions_assigned")

        wait_until(
            lambda: assigned(a) > 0 and assigned(b) > 0 and assigned(a) + assigned(b) == sum(sizes),
            60, what="both instances assigned",
        )
        before = {id(s): len(s.outputs) for s in (a, b)}
        sent, _ = _produce(config, sizes, 3, seed=0)
        wait_until(lambda: a.readings + b.readings >= sent, 60, what=f"{sent} records")
        held = {
            name: {tp for out in s.outputs[before[id(s)]:] for tp in out.offsets}
            for name, s in (("a", a), ("b", b))
        }
    numbers = {name: {p for _, p in tps} for name, tps in held.items()}
    assert numbers["a"] and numbers["b"], held
    assert not numbers["a"] & numbers["b"], f"a changelog partition written by both: {held}"
