"""Young parts of a machine model. A machine that starts idle: its machine model learns only idle
readings before scoring, then sees the first duty cycle (a new machine, or a service started at
night). A sensor added to a running machine: its baseline is young inside a calibrated model.
The alerts must be what they are without the youth (none), and a broken relation must still be
seen."""

from __future__ import annotations

import random

import orjson
from fakes import FakeRecord, duty_cycle, validate_alert
from prometheus_client import CollectorRegistry

from anomstream.detectors.relation_model import RelationModel
from anomstream.stream.config import load_config
from anomstream.stream.metrics import Metrics
from anomstream.stream.pipeline import Pipeline

START = 1_700_000_000.0


def _reading(rng: random.Random, load: float, current_load: float | None = None) -> dict:
    """Current, vibration and speed following the load (and a jitter they share);
    `current_load` makes the current follow another load: a broken relation."""
    jitter = rng.gauss(0.0, 0.03)
    own = load if current_load is None else current_load
    return {
        "current_a": 10.0 + 20.0 * (own + jitter) + rng.gauss(0.0, 0.3),
        "vib_rms": 0.2 + 0.5 * (load + jitter) + rng.gauss(0.0, 0.02),
        "speed_rpm": 1500.0 - 40.0 * (load + jitter) + rng.gauss(0.0, 2.0),
    }


def _load(i: int, idle: int) -> float:
    """Reading i's load on a machine idle for its first `idle` readings."""
    return 0.0 if i < idle else duty_cycle(i)


def _stream(idle: int, count: int, seed: int = 6) -> list[dict]:
    rng = random.Random(seed)
    return [_reading(rng, _load(i, idle)) for i in range(count)]


def test_a_machine_model_that_learned_only_idle_learns_the_duty_cycle() -> None:
    # Before protection was bounded, about half of its readings scored >= 0.99999 for
    # thousands of readings: it protected every duty cycle as a fault.
    model = RelationModel()
    scores = [model.score_learn_one(x) for x in _stream(idle=200, count=4000)]
    later = scores[2500:]
    assert max(later) < 0.99999  # the duty cycle is normal to it by then
    # current follows the load half a period late: each sensor stays in its range
    rng = random.Random(7)
    broken = [
        model.score_learn_one(_reading(rng, duty_cycle(i), current_load=duty_cycle(i + 120)))
        for i in range(4000, 4120)
    ]
    assert max(broken) >= 0.99999
    assert max(model.last_contributions, key=model.last_contributions.get) == "current_a"


def _alerts(idle: int, count: int, added_at: int | None = None) -> list[dict]:
    """The pipeline's alerts on `_stream(idle, count)`; with `added_at`, a pressure sensor
    following the load joins the machine's readings from that reading on."""
    config = load_config(environ={}, overrides={"state.enabled": False})
    pipeline = Pipeline(config, metrics=Metrics(CollectorRegistry()), clock=lambda: START)
    rng = random.Random(8)
    readings = _stream(idle, count)
    if added_at is not None:
        for i in range(added_at, count):
            readings[i]["pressure_bar"] = 4.0 + 2.5 * _load(i, idle) + rng.gauss(0.0, 0.06)
    records = [
        FakeRecord("telemetry", 0, i, int((START + i) * 1000), b"m1",
                   orjson.dumps({"machine_id": "m1", "ts": START + i, "sensors": x}))
        for i, x in enumerate(readings)
    ]  # fmt: skip
    alerts = []
    for i in range(0, count, 500):
        alerts += [validate_alert(m.value) for m in pipeline.process(records[i : i + 500]).alerts]
    return alerts


def test_a_machine_that_starts_idle_stops_alerting_once_its_model_learned_the_cycle() -> None:
    # Before protection was bounded: an alert on every duty cycle (24 in 6,000 readings).
    # Now: a few while the young machine model learns the first cycles (6 in the first 1,600
    # readings, measured), none after; each one resolves. Per-sensor models alone: none.
    assert _alerts(idle=0, count=4000) == []
    alerts = _alerts(idle=200, count=4000)
    assert [a["source"]["offset"] for a in alerts if a["source"]["offset"] >= 2000] == []
    assert [a["status"] for a in alerts] == ["firing", "resolved"] * (len(alerts) // 2)


def test_a_sensor_added_to_a_running_machine_raises_no_alert() -> None:
    # Measured before a joining sensor waited for its baseline to form: one alert, held open for
    # 1,670 readings (its variance formed from 30 readings of a 240-reading duty cycle).
    assert _alerts(idle=0, count=6000, added_at=3000) == []


def test_a_checkpoint_from_before_bounded_protection_restores_as_a_settled_model() -> None:
    model = RelationModel()
    for x in _stream(idle=0, count=600):
        model.learn_one(x)
    state = model.__getstate__()
    del state["_learned"], state["_protected"]  # as pickled before they existed
    restored = RelationModel.__new__(RelationModel)
    restored.__setstate__(state)
    assert restored._learned == restored.memory and restored._protected == 0.0
    x = _stream(idle=0, count=601)[-1]
    assert restored.score_one(x) == model.score_one(x)


def _off(rng: random.Random) -> dict:
    """A machine switched off: no current, no speed, exactly; a little vibration from nearby."""
    return {"current_a": 0.0, "vib_rms": 0.01 + abs(rng.gauss(0.0, 0.005)), "speed_rpm": 0.0}


def test_sensors_exactly_zero_when_the_machine_was_first_seen_join_the_relations() -> None:
    # A machine first seen switched off for longer than a baseline forms (500 readings). Before,
    # current and speed learned a level but no spread, and bounded by it never moved again:
    # the machine model never had two sensors to relate, and a broken relation scored 0.
    rng = random.Random(9)
    model = RelationModel()
    for _ in range(700):
        model.score_learn_one(_off(rng))
    for i in range(700, 6000):
        model.score_learn_one(_reading(rng, duty_cycle(i)))
    broken = [
        model.score_learn_one(_reading(rng, duty_cycle(i), current_load=duty_cycle(i + 120)))
        for i in range(6000, 6120)
    ]
    assert max(broken) >= 0.99999
    assert max(model.last_contributions, key=model.last_contributions.get) == "current_a"
