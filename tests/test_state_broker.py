"""Durable, mobile state on a real broker with real processes: crashes, exactly-once, scale-out,
tampered checkpoints."""

from __future__ import annotations

import pickle
import random
import threading
import time
from typing import Any

import orjson
import pytest
from fakes import FakeClock, validate_alert
from kafka import KafkaProducer
from kafka_helpers import (
    TEST_SIGNING_KEY,
    broker_hides_aborted_transactions,
    produce_sim,
    read_topic,
    running_service,
    service_config,
    wait_until,
)
from process_helpers import ServiceProcess, committed
from prometheus_client import CollectorRegistry

from anomstream.stream.config import Config
from anomstream.stream.metrics import Metrics
from anomstream.stream.pipeline import Pipeline
from anomstream.stream.simulator import FaultSpec, Simulator
from anomstream.stream.state_codec import StateCodec

pytestmark = pytest.mark.broker

MACHINES = 4
PER_MACHINE = 1500
FAULTS = [  # clear faults, each on its own machine, well after warm-up
    FaultSpec("press-01", "temp_c", "spike", start_index=500, duration=2, magnitude=7.0),
    FaultSpec("lathe-02", "current_a", "level_shift", start_index=700, duration=80, magnitude=6.0),
    FaultSpec("pump-03", "pressure_bar", "stuck", start_index=900, duration=60),
    FaultSpec("mill-04", "vib_rms", "noise_burst", start_index=1100, duration=60, magnitude=3.0),
]
# Checkpoint often, so kills land between checkpoints, commits and alert publications.
STATE_ENV = {"ANOMSTREAM_STATE__CHECKPOINT_INTERVAL_SECONDS": "0.3"}


def _crash_config(kafka_broker: str, unique: str) -> Config:
    return service_config(kafka_broker, unique, **{"kafka.session_timeout_ms": 3000})


def _stream(config: Config, seed: int = 21) -> tuple[Simulator, list[tuple[bytes, bytes]]]:
    sim = Simulator(machines=MACHINES, seed=seed, faults=FAULTS)
    return sim, [(r.machine_id.encode(), orjson.dumps(r.record)) for r in sim.readings(MACHINES * PER_MACHINE)]


def _produce_paced(bootstrap: str, topic: str, items: list[tuple[bytes, bytes]], seconds: float) -> threading.Thread:
    def run() -> None:
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        step = seconds / len(items)
        started = time.monotonic()
        for i, (key, value) in enumerate(items):
            ahead = started + i * step - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            producer.send(topic, key=key, value=value)
        producer.flush()
        producer.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _final_states(config: Config) -> dict[str, Any]:
    codec = StateCodec(TEST_SIGNING_KEY)
    latest = {r.key.decode(): r.value for r in read_topic(config.kafka.bootstrap_servers, config.state.changelog_topic)}
    return {machine: codec.loads(value) for machine, value in latest.items()}


def _reference_alerts(config: Config) -> set[tuple[str, str]]:
    """What one uninterrupted pipeline decides on the same records in the same partition order."""
    pipeline = Pipeline(config, metrics=Metrics(CollectorRegistry()), clock=FakeClock())
    records = read_topic(config.kafka.bootstrap_servers, config.kafka.input_topics[0])
    alerts = [orjson.loads(m.value) for m in pipeline.process(records).alerts]
    return {(a["alert_id"], a["status"]) for a in alerts}


def _strip(alert: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in alert.items() if k != "detected_at"}  # wall clock: differs per run


def _run_with_crashes(config: Config, items: list[tuple[bytes, bytes]], kills: int, **env: str) -> list[int]:
    """Process `items` while SIGKILLing the service `kills` times; returns kill times' progress."""
    rng = random.Random(7)
    producer = _produce_paced(config.kafka.bootstrap_servers, config.kafka.input_topics[0], items, seconds=25)
    progress = []
    for _ in range(kills):
        with ServiceProcess(config, **STATE_ENV, **env) as service:
            # Once it holds partitions (the join waits out the killed member's session), let it
            # process for a random while, then kill it wherever it is.
            wait_until(lambda: service.sample("anomstream_partitions_assigned") >= 1 or not service.alive,
                       60, what="partitions assigned")
            time.sleep(rng.uniform(0.2, 2.0))
            assert service.alive, service.output()
            progress.append(committed(config.kafka.bootstrap_servers, config.kafka.group_id))
            service.kill()
    producer.join()
    with ServiceProcess(config, **STATE_ENV, **env) as service:
        wait_until(lambda: service.sample("anomstream_partitions_assigned") >= 1, 60, what="assigned")
        wait_until(lambda: committed(config.kafka.bootstrap_servers, config.kafka.group_id) >= len(items),
                   120, what="everything processed after the last restart")
        assert service.stop() == 0, service.output()
    return progress


def _check_state_and_alerts(config: Config, sim: Simulator, alerts: list[dict[str, Any]]) -> None:
    # Every reading is in the final state exactly once: restored state carried every model on
    # (a lost checkpoint would restart counts at 0 and re-enter warm-up).
    per_machine = {m: PER_MACHINE for m in sim.machine_ids}
    states = _final_states(config)
    assert {m: s.readings for m, s in states.items()} == per_machine
    for machine, state in states.items():
        assert {e.learned for e in state.entities.values()} == {PER_MACHINE}, machine
    # Every injected fault alerted, and the crash run decided exactly what an uninterrupted run does.
    for fault in sim.faults:
        assert any(a["machine_id"] == fault.machine and a["status"] == "firing"
                   and fault.sensor in [s["name"] for s in a["sensors"]] for a in alerts), fault
    assert {(a["alert_id"], a["status"]) for a in alerts} == _reference_alerts(config)


def test_sigkill_crashes_lose_nothing_and_duplicates_are_identical(kafka_broker: str, unique: str) -> None:
    config = _crash_config(kafka_broker, unique)
    sim, items = _stream(config)
    progress = _run_with_crashes(config, items, kills=10)
    assert len(progress) == 10 and progress[-1] > progress[0]  # kills landed mid-stream
    alerts = [validate_alert(r.value) for r in read_topic(kafka_broker, config.kafka.alert_topic)]
    _check_state_and_alerts(config, sim, alerts)
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for alert in alerts:
        by_key.setdefault((alert["alert_id"], alert["status"]), []).append(_strip(alert))
    for copies in by_key.values():  # at-least-once: a duplicate is the same alert again
        assert all(copy == copies[0] for copy in copies)


def test_exactly_once_mode_never_duplicates_an_alert(kafka_broker: str, unique: str) -> None:
    config = _crash_config(kafka_broker, unique)
    sim, items = _stream(config, seed=22)
    _run_with_crashes(config, items, kills=10, ANOMSTREAM_STATE__EXACTLY_ONCE="true",
                      ANOMSTREAM_SERVICE__INSTANCE="eos-test")
    records = read_topic(kafka_broker, config.kafka.alert_topic, isolation_level="read_committed")
    alerts = [validate_alert(r.value) for r in records]
    _check_state_and_alerts(config, sim, alerts)
    keys = [(a["alert_id"], a["status"]) for a in alerts]
    if not broker_hides_aborted_transactions(kafka_broker, f"probe-{unique}"):
        # Everything above holds; what cannot hold is invisibility of aborted transactions,
        # because this broker delivers aborted records to read_committed consumers (probed).
        pytest.xfail(
            f"broker does not implement read_committed isolation (Tansu 0.6): {len(keys) - len(set(keys))} "
            "alert(s) from aborted transactions visible; run with ANOMSTREAM_TEST_BOOTSTRAP=<Apache Kafka>"
        )
    assert len(keys) == len(set(keys)), "a read_committed consumer saw an alert twice"


def _assigned(service: ServiceProcess) -> float:
    return service.sample("anomstream_partitions_assigned", default=-1)


def test_scale_out_moves_partitions_and_state_and_back(kafka_broker: str, unique: str) -> None:
    config = _crash_config(kafka_broker, unique)
    sim, items = _stream(config, seed=23)
    with ServiceProcess(config, **STATE_ENV) as a, ServiceProcess(config, **STATE_ENV) as b:
        wait_until(lambda: _assigned(a) == 1 and _assigned(b) == 1, 60, what="one partition each")
        producer = _produce_paced(kafka_broker, config.kafka.input_topics[0], items, seconds=25)
        time.sleep(6)  # before the first injected fault (reading 500 of 1500, ~8 s in)
        a.kill()
        wait_until(lambda: _assigned(b) == 2, 60, what="b takes over a's partition")
        assert b.sample("anomstream_restore_records_total") > 0  # a's machines came with their state
        a_again = ServiceProcess(config, **STATE_ENV).start()
        try:
            wait_until(lambda: _assigned(a_again) == 1 and _assigned(b) == 1, 60, what="rebalance back")
            producer.join()
            wait_until(lambda: committed(kafka_broker, config.kafka.group_id) >= len(items), 120,
                       what="everything processed")
            assert a_again.stop() == 0 and b.stop() == 0
        finally:
            a_again.kill()
    alerts = [validate_alert(r.value) for r in read_topic(kafka_broker, config.kafka.alert_topic)]
    _check_state_and_alerts(config, sim, alerts)


def test_tampered_checkpoint_is_rejected_not_unpickled(kafka_broker: str, unique: str, tmp_path) -> None:
    config = service_config(kafka_broker, unique)
    marker = tmp_path / "unpickled"

    class Bomb:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (open, (str(marker), "w"))

    genuine = StateCodec(TEST_SIGNING_KEY).dumps("placeholder")
    forged = genuine[:33] + pickle.dumps(Bomb())  # a real tag, a body the key never signed
    foreign = StateCodec("somebody-elses-key-000").dumps("state")
    producer = KafkaProducer(bootstrap_servers=kafka_broker)
    for partition in (0, 1):
        producer.send(config.state.changelog_topic, key=b"press-01", value=forged, partition=partition)
        producer.send(config.state.changelog_topic, key=b"lathe-02", value=foreign, partition=partition)
    producer.flush()
    producer.close()
    sim = Simulator(machines=2, seed=4, fault_rate=0)
    sent = produce_sim(kafka_broker, config.kafka.input_topics[0], sim, 400)
    with running_service(config) as service:
        service.wait_consumed(sent)
        _status, metrics = service.http_get("/metrics")
    assert not marker.exists()
    assert "anomstream_state_rejected_total 2.0" in metrics
    assert {m: s.readings for m, s in _final_states(config).items()} == {"press-01": 200, "lathe-02": 200}
