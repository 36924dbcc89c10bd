"""A storm of hostile records through `anomstream run` on a real broker: no record stops the
service, every record is accounted for, and a fault sent after the storm still alerts."""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import datetime
from typing import Any

import orjson
import pytest
from fakes import validate_alert
from fuzz_records import POISON, POISON_PILLS, RecordMutator, register_raising_detector
from kafka_helpers import (
    RunningService,
    produce,
    read_topic,
    running_service,
    service_config,
    wait_until,
)

from anomstream.stream.errors import InvalidRecord
from anomstream.stream.pipeline import DLQ_REASON_HEADER
from anomstream.stream.simulator import FaultSpec, Simulator
from anomstream.stream.telemetry import REASONS, TelemetryDecoder

pytestmark = pytest.mark.broker

FUZZ_SEED = 20261201  # the whole storm is reproducible from this seed
MUTATED = 10_000
MACHINES = 3
STORM_PER_MACHINE = 400  # clean readings per machine mixed into the storm (past warm-up)
AFTER_PER_MACHINE = 120  # clean readings per machine after it, with the fault
FAULT = FaultSpec(
    "press-01", "temp_c", "spike", start_index=STORM_PER_MACHINE + 40, duration=2, magnitude=7.0
)
BUGGY = 200  # readings of a machine whose detector raises on every 5th one (internal_error)
CHUNKS = 5  # the storm is produced in chunks, with health checks between them

Item = tuple[str, bytes | None, bytes | None]  # kind, key, value


def _storm(sim: Simulator) -> list[Item]:
    """Clean simulator records (in order), mutated ones, buggy ones and the issue's poison pills."""
    clean: list[Item] = [
        ("clean", r.machine_id.encode(), orjson.dumps(r.record))
        for r in sim.readings(MACHINES * STORM_PER_MACHINE)
    ]
    base = [orjson.loads(value) for _, _, value in clean if value]
    fuzz = list(RecordMutator(FUZZ_SEED).records(base, MUTATED))
    fuzz += [
        (f"pill_{kind}", b"press-01", value) for kind, value in POISON_PILLS for _ in range(10)
    ]
    buggy: list[Item] = [
        (
            "buggy",
            b"buggy-01",
            orjson.dumps(
                {
                    "machine_id": "buggy-01",
                    "ts": 1.8e9 + i,
                    "sensors": {"x": POISON if i % 5 == 4 else 1.0},
                }
            ),
        )
        for i in range(BUGGY)
    ]
    # Interleave, keeping each stream's own order: the clean machines' readings stay in sequence.
    rng = random.Random(FUZZ_SEED)
    streams = [clean, fuzz, buggy]
    cursors = [0, 0, 0]
    out: list[Item] = []
    while any(c < len(s) for c, s in zip(cursors, streams)):
        left = [len(s) - c for c, s in zip(cursors, streams)]
        pick = rng.choices(range(3), weights=left)[0]
        out.append(streams[pick][cursors[pick]])
        cursors[pick] += 1
    return out


def _expected(decoder: TelemetryDecoder, items: list[Item], max_sensors: int) -> Counter[str]:
    """What each record should become: "valid" or its dead-letter reason."""
    outcome: Counter[str] = Counter()
    sensors: dict[str, set[str]] = {}  # per machine, as the pipeline's per-machine budget sees it
    for kind, key, value in items:
        try:
            reading = decoder.decode(key, value)
        except InvalidRecord as exc:
            outcome[exc.reason] += 1
            continue
        known = sensors.setdefault(reading.machine, set())
        if len(known | set(reading.sensors)) > max_sensors:
            outcome["too_many_sensors"] += 1
            continue
        known.update(reading.sensors)
        poisoned = kind == "buggy" and reading.sensors["x"] == POISON
        outcome["internal_error" if poisoned else "valid"] += 1
    return outcome


def _sample(metrics: str, name: str) -> float:
    line = next(line for line in metrics.splitlines() if line.startswith(name + " "))
    return float(line.split()[1])


def _accounted(service: RunningService) -> int:
    return sum(o.readings + o.skipped + len(o.dead_letters) for o in service.outputs)


def _alive(service: RunningService) -> bool:
    assert service.thread.is_alive() and service.error is None, f"service died: {service.error!r}"
    assert service.http_get("/healthz")[0] == 200
    return True


def _wait_accounted(service: RunningService, count: int, timeout: float) -> None:
    # Checks the service's health on every round while it works through the backlog.
    wait_until(
        lambda: _alive(service) and _accounted(service) >= count,
        timeout,
        interval=0.5,
        what=f"{count} records",
    )


def test_a_storm_of_hostile_records_stops_nothing(
    kafka_broker: str, unique: str, monkeypatch: pytest.MonkeyPatch, record_property: Any
) -> None:
    buggy = register_raising_detector(monkeypatch.setitem)
    config = service_config(
        kafka_broker, unique, **{"detector.templates": [{"name": buggy, "machine": "buggy-*"}]}
    )
    topic = config.kafka.input_topics[0]
    sim = Simulator(machines=MACHINES, seed=7, start_time=1_795_000_000.0, faults=[FAULT])
    storm = _storm(sim)
    expected = _expected(TelemetryDecoder(config.telemetry), storm, config.detector.max_sensors_per_machine)
    assert sum(1 for kind, _, _ in storm if kind not in ("clean", "buggy")) >= MUTATED
    after = [
        (r.machine_id.encode(), orjson.dumps(r.record))
        for r in sim.readings(MACHINES * AFTER_PER_MACHINE)
    ]

    started = time.monotonic()
    with running_service(config) as service:
        step = -(-len(storm) // CHUNKS)
        for i in range(0, len(storm), step):
            produce(kafka_broker, topic, ((key, value) for _, key, value in storm[i : i + step]))
            _alive(service)
        produced_seconds = time.monotonic() - started
        _wait_accounted(service, len(storm), timeout=180)
        storm_seconds = time.monotonic() - started
        produce(kafka_broker, topic, after)
        _wait_accounted(service, len(storm) + len(after), timeout=60)
        _alive(service)
        status, metrics = service.http_get("/metrics")
        assert status == 200
        processed = sum(o.readings for o in service.outputs)
        skipped = sum(o.skipped for o in service.outputs)

    dead = read_topic(kafka_broker, config.kafka.dlq_topic, timeout=60)
    reasons = Counter(dict(r.headers)[DLQ_REASON_HEADER].decode() for r in dead)
    sent = len(storm) + len(after)
    figures = {
        "sent": sent,
        "mutated": MUTATED,
        "processed": processed,
        "skipped": skipped,
        "dead_lettered": len(dead),
        "by_reason": dict(sorted(reasons.items())),
        "models_created": _sample(metrics, "anomstream_models_created_total"),
        "crashes": 0,  # the service thread never died (checked on every wait round)
        "produce_seconds": round(produced_seconds, 1),
        "storm_seconds": round(storm_seconds, 1),
        "total_seconds": round(time.monotonic() - started, 1),
    }
    print(f"\nfuzz figures: {orjson.dumps(figures).decode()}")
    record_property("fuzz_figures", figures)

    # Every record accounted for: processed + dead-lettered = sent, reason by reason.
    assert skipped == 0
    assert processed + len(dead) == sent
    assert set(reasons) <= set(REASONS)
    assert reasons == Counter({k: v for k, v in expected.items() if k != "valid"}), (
        reasons,
        expected,
    )
    assert processed == expected["valid"] + len(after)
    assert reasons["internal_error"] == BUGGY // 5
    assert (
        f'anomstream_internal_errors_total{{type="ZeroDivisionError"}} {float(BUGGY // 5)}'
        in metrics
    )
    for reason, count in reasons.items():
        assert f'anomstream_readings_rejected_total{{reason="{reason}"}} {float(count)}' in metrics
    # Both poison pills of issue 9 were in the storm and were dead-lettered.
    pills = {value for _, value in POISON_PILLS}
    sent_pills = sum(1 for _, _, value in storm if value in pills)
    assert sent_pills >= 10 * len(POISON_PILLS)
    assert sum(1 for r in dead if r.value in pills) == sent_pills

    # The fault sent after the storm fires, on the right machine and sensor.
    alerts = [validate_alert(r.value) for r in read_topic(kafka_broker, config.kafka.alert_topic)]
    (fault,) = [f for f in sim.faults if f.machine == FAULT.machine]
    firing = [a for a in alerts if a["machine_id"] == FAULT.machine and a["status"] == "firing"]
    assert firing, [a["machine_id"] for a in alerts]
    assert FAULT.sensor in [s["name"] for s in firing[-1]["sensors"]]
    fired_at = datetime.fromisoformat(firing[-1]["event_time"]).timestamp()
    assert fault.start_ts - 0.001 <= fired_at <= fault.start_ts + 5 * sim.interval
