"""The broker restarts mid-stream, twice (down 10 s, then 60 s): nothing is lost, every injected
fault alerts, every duplicate alert is a replay with the same id, and /readyz and the metrics
say "not ready" while the broker is away.

The service runs as `anomstream run` under a supervisor that restarts it whenever it exits
(Docker's `restart: unless-stopped`); the broker is Tansu on S3 (moto), so topics and committed
offsets survive its restarts. What the service does in each outage (rides through, or exits
with 69 and is restarted) is printed as a summary (`pytest -s`) and checked to be one of the
two documented behaviours.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry
from fakes import validate_alert
from kafka_helpers import produce_sim, read_topic, service_config, wait_until
from outage_helpers import Exit, Outage, PersistentBroker, S3Server, Supervisor, Watcher
from process_helpers import ServiceProcess, committed

from anomstream.stream.config import Config
from anomstream.stream.metrics import Metrics
from anomstream.stream.pipeline import Pipeline
from anomstream.stream.simulator import FaultSpec, Simulator

pytestmark = pytest.mark.broker

EX_UNAVAILABLE = 69  # the documented exit code of a run that Kafka could not complete
PER_MACHINE = 400  # readings per machine in each of the four chunks
MACHINES = 4
# One fault per chunk, after the models' warm-up: before the first outage, in the stream the
# first and the second outage interrupt, and after the broker is back for good.
FAULTS = [
    FaultSpec("press-01", "temp_c", "spike", start_index=300, duration=2, magnitude=6.0),
    FaultSpec("lathe-02", "current_a", "level_shift", start_index=700, duration=80, magnitude=5.0),
    FaultSpec("mill-04", "vib_rms", "noise_burst", start_index=820, duration=60, magnitude=3.0),
    FaultSpec("press-01", "temp_c", "spike", start_index=1500, duration=2, magnitude=6.0),
]
# (seconds down, readings of the chunk consumed first). The long outage comes after the third
# fault's alert was published and before the checkpoint that would commit it, so its replay
# publishes that alert again: the duplicate the test checks.
OUTAGES = ((10.0, 1), (60.0, (820 - 2 * PER_MACHINE + 20) * MACHINES))
CHECKPOINT_SECONDS = "10"  # commits (and so replays) cover more than one outage's notice
# Outside the first seconds after the broker stops (kafka-python notices a refused connection
# at once, the readiness thread looks every 0.5 s; generous for a loaded machine).
NOTICE_SECONDS = 5.0
# A firing alert belongs to a fault if its reading is in the fault or shortly after it.
FIRE_WINDOW_READINGS = 20


@pytest.fixture(scope="module")
def persistent_broker() -> Iterator[PersistentBroker]:
    with S3Server() as s3, PersistentBroker(s3) as broker:
        yield broker


def test_broker_outages_lose_nothing_and_replay_alerts_with_their_ids(
    persistent_broker: PersistentBroker, unique: str
) -> None:
    bootstrap = persistent_broker.bootstrap_servers
    config = service_config(bootstrap, unique)
    topic, group = config.kafka.input_topics[0], config.kafka.group_id
    sim = Simulator(machines=MACHINES, seed=11, faults=FAULTS)
    chunk = MACHINES * PER_MACHINE
    supervisor = Supervisor(
        config, ANOMSTREAM_STATE__CHECKPOINT_INTERVAL_SECONDS=CHECKPOINT_SECONDS
    )
    watcher = Watcher(supervisor)
    outages: list[Outage] = []
    started = time.monotonic()
    try:
        supervisor.start()
        watcher.start()
        sent = produce_sim(bootstrap, topic, sim, chunk)
        wait_until(lambda: committed(bootstrap, group) >= sent, 120, what="first chunk committed")
        for seconds, into in OUTAGES:
            before = _consumed(watcher)
            sent += produce_sim(bootstrap, topic, sim, chunk)
            # Mid-stream: the service is working through the chunk when the broker goes.
            wait_until(lambda: _consumed(watcher) >= before + into, 90, what="chunk consumed")
            outages.append(persistent_broker.outage(seconds))
            wait_until(lambda: committed(bootstrap, group) >= sent, 180, what="caught up")
        sent += produce_sim(bootstrap, topic, sim, chunk)
        wait_until(lambda: committed(bootstrap, group) >= sent, 120, what="last chunk committed")
        time.sleep(1.0)  # one more look at the metrics of the caught-up process
    finally:
        watcher.stop()
        last = supervisor.stop()
        supervisor.kill()
    elapsed = time.monotonic() - started

    # -- how the service behaved: rode through, or exited 69 and came back
    assert last is not None and last.code == 0, last.output if last else "no process"
    exits = supervisor.exits
    for exit in exits:
        assert exit.code == EX_UNAVAILABLE, exit.output
        assert "processed again after a restart" in exit.output, exit.output  # the one-line reason
        assert not _anomstream_traceback(exit.output), exit.output
    assert not _anomstream_traceback(last.output), last.output
    ends = [o.stopped for o in outages[1:]] + [float("inf")]
    behaviour = [_behaviour(outage, end, exits) for outage, end in zip(outages, ends, strict=True)]

    # -- /readyz false and the metrics showing it, while the broker is away
    seen: list[dict[str, Any]] = []
    for outage in outages:
        during = watcher.between(outage.stopped + NOTICE_SECONDS, outage.restarted)
        assert during, "no sample during the outage"
        assert all(s.readyz != 200 for s in during), during
        answered = [s for s in during if s.readyz == 503]
        assert answered, during  # a process was up and said so (not only refusing connections)
        assert all(s.ready == 0 and s.connected == 0 for s in answered), answered
        seen.append({
            "readyz": sorted({s.readyz for s in during}, key=str),
            "anomstream_ready": sorted({s.ready for s in answered}),
            "anomstream_broker_connected": sorted({s.connected for s in answered}),
        })

    # -- nothing lost: every record consumed and its offset committed
    records = _read_settled(bootstrap, topic)
    assert len(records) == sent
    assert committed(bootstrap, group) == sent
    consumed = sum(watcher.last_consumed().values())
    assert consumed >= sent  # replays after a restart count again
    assert read_topic(bootstrap, config.kafka.dlq_topic) == []

    # -- every fault alerts; duplicates are replays with the same id
    alerts = [validate_alert(r.value) for r in _read_settled(bootstrap, config.kafka.alert_topic)]
    firing = [a for a in alerts if a["status"] == "firing"]
    for fault in sim.faults:
        end = fault.end_ts + FIRE_WINDOW_READINGS * sim.interval
        assert any(
            a["machine_id"] == fault.machine and fault.start_ts <= _ts(a["event_time"]) <= end
            for a in firing
        ), (fault, [(a["machine_id"], a["event_time"], a["status"]) for a in alerts])
    # The same alerts as one undisturbed pass over the same records (ids are deterministic).
    assert {(a["alert_id"], a["status"]) for a in alerts} == _undisturbed_alerts(config, records)
    copies: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for alert in alerts:
        copies[(alert["alert_id"], alert["status"])].append(alert)
    duplicates = 0
    for same in copies.values():
        first = _without_detected_at(same[0])
        for other in same[1:]:
            assert _without_detected_at(other) == first, (same[0], other)
            duplicates += 1

    print(
        "\nbroker-outage figures: "
        + orjson.dumps({
            "outages": [
                {"down_s": o.planned, "unreachable_s": round(o.unreachable, 1), "service": b, **v}
                for o, b, v in zip(outages, behaviour, seen, strict=True)
            ],
            "exits": [{"code": e.code, "after_s": round(e.ended - e.started, 1)} for e in exits],
            "processes": supervisor.starts,
            "records_sent": sent,
            "committed": committed(bootstrap, group),
            "consumed_across_processes": consumed,
            "dead_letters": 0,
            "alerts": len(alerts),
            "firing": len(firing),
            "faults": len(sim.faults),
            "duplicate_alerts": duplicates,
            "wall_s": round(elapsed, 1),
        }).decode()
    )


def _read_settled(bootstrap: str, topic: str) -> list[Any]:
    """`read_topic` until two reads agree: on Tansu's S3 engine a fetch can come back empty
    before the end (its end offsets are short by a batch), so one read may stop early."""
    previous: list[Any] | None = None
    deadline = time.monotonic() + 90
    while True:
        records = read_topic(bootstrap, topic, timeout=30)
        if previous is not None and len(records) == len(previous) or time.monotonic() > deadline:
            return records
        previous = records


def _undisturbed_alerts(config: Config, records: list[Any]) -> set[tuple[str, str]]:
    """(alert_id, status) of every alert the pipeline makes from `records` in one pass."""
    pipeline = Pipeline(config, metrics=Metrics(CollectorRegistry()))
    out = pipeline.process(records)
    alerts = (orjson.loads(message.value) for message in out.alerts)
    return {(alert["alert_id"], alert["status"]) for alert in alerts}


def _consumed(watcher: Watcher) -> float:
    samples = [s for s in watcher.samples[-4:] if s.consumed is not None]
    return samples[-1].consumed if samples else 0.0  # type: ignore[return-value]


def _behaviour(outage: Outage, until: float, exits: list[Exit]) -> str:
    """What the service did from the outage's start until the next one."""
    ended = [e for e in exits if outage.stopped <= e.ended < until]
    if not ended:
        return "rode through"
    return ", ".join(
        f"exited {e.code} after {e.ended - outage.stopped:.0f} s of outage, restarted"
        for e in ended
    )


def _anomstream_traceback(output: str) -> bool:
    """A traceback through anomstream's own code (kafka-python logs some of its own)."""
    return re.search(r'File ".*/(anomstream|stream|detectors)/[^"]+\.py", line', output) is not None


def _without_detected_at(alert: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in alert.items() if k != "detected_at"}


def _ts(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


# A stop that waits out the 30 s delivery timeout, or longer, is a hang to an operator.
STOP_BOUND_SECONDS = 25.0


def test_sigterm_while_the_broker_is_away_exits_69_promptly(
    persistent_broker: PersistentBroker, unique: str
) -> None:
    bootstrap = persistent_broker.bootstrap_servers
    config = service_config(bootstrap, unique)
    sim = Simulator(machines=2, seed=1, fault_rate=0)
    sent = produce_sim(bootstrap, config.kafka.input_topics[0], sim, 400)
    with ServiceProcess(config) as service:
        group = config.kafka.group_id
        wait_until(lambda: committed(bootstrap, group) >= sent, 90, what="committed")
        persistent_broker.stop()
        try:
            wait_until(
                lambda: service.sample("anomstream_broker_connected", 1) == 0 and service.alive,
                30, what="the service noticing the outage",
            )
            started = time.monotonic()
            code = service.stop(timeout=60)
            took = time.monotonic() - started
        finally:
            persistent_broker.start()
        output = service.output()
    assert code == EX_UNAVAILABLE, output
    assert took < STOP_BOUND_SECONDS, output
    assert "stop requested while the broker has been unreachable" in output
    assert not _anomstream_traceback(output), output
    assert committed(bootstrap, config.kafka.group_id) == sent
    print(f"\nSIGTERM during an outage: exit {code} after {took:.1f} s")
