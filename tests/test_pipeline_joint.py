"""The machine-wide model next to the per-sensor models: one per machine, attribution into the
alert's `sensors` list, state that survives a checkpoint. A fake joint model (pure logic)."""

from __future__ import annotations

import pickle

import orjson
import pytest
from fakes import FakeClock, FakeRecord, validate_alert
from kafka_helpers import TEST_SIGNING_KEY
from prometheus_client import CollectorRegistry
from river.base import AnomalyDetector

from anomstream.detectors import registry
from anomstream.stream.config import load_config
from anomstream.stream.metrics import Metrics
from anomstream.stream.pipeline import Pipeline


class CurrentFollowsLoad(AnomalyDetector):
    """Scores 0.99999 when `current` leaves `load`; blames `current` for 90 % of it."""

    def __init__(self, gap: float = 2.0) -> None:
        self.gap = gap
        self.learned = 0
        self.last_contributions: dict[str, float] = {}

    def learn_one(self, x: dict) -> None:
        self.learned += 1

    def score_one(self, x: dict) -> float:
        broken = abs(x["current"] - x["load"]) >= self.gap
        self.last_contributions = {"current": 0.9, "load": 0.1} if broken else {}
        return 0.99999 if broken else 0.1


class Blameless(CurrentFollowsLoad):
    """The same, as a River model that reports no contributions."""

    def score_one(self, x: dict) -> float:
        score = super().score_one(x)
        del self.last_contributions
        return score


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, cls in [("fake-joint", CurrentFollowsLoad), ("fake-blameless", Blameless)]:
        spec = registry.DetectorSpec(name, lambda seed, cls=cls, **params: cls(**params))
        monkeypatch.setitem(registry.DETECTORS, name, spec)


def _run(machine_model: str, rows: int = 400, broken: range = range(300, 340)) -> tuple[Pipeline, list[dict]]:
    config = load_config(environ={}, overrides={
        "state.signing_key": TEST_SIGNING_KEY, "detector.name": "ewm-zscore", "detector.warmup": 50,
        "detector.machine_model": machine_model,
    })
    pipeline = Pipeline(config, metrics=Metrics(CollectorRegistry()), clock=FakeClock())
    records = []
    for i in range(rows):
        load = 50.0 + (i % 7)  # in range throughout; current follows it except in `broken`
        current = 106.0 - load if i in broken else load  # mirrored: its own range, not its relation
        value = orjson.dumps({"machine_id": "press-1", "ts": 1.7e9 + i, "sensors": {"load": load, "current": current}})
        records.append(FakeRecord("telemetry", 0, i, int((1.7e9 + i) * 1000), b"press-1", value))
    alerts = [validate_alert(m.value) for i in range(0, rows, 100) for m in pipeline.process(records[i:i + 100]).alerts]
    return pipeline, alerts


def test_the_machine_model_names_the_sensor_it_blames(fake_models: None) -> None:
    pipeline, alerts = _run("fake-joint")
    firing = [a for a in alerts if a["status"] == "firing"]
    assert firing and firing[0]["sensors"][0]["name"] == "current"
    shares = [s["contribution"] for s in firing[0]["sensors"]]
    assert sum(shares) == pytest.approx(1.0, abs=1e-3) and shares == sorted(shares, reverse=True)
    assert firing[0]["detector"]["name"] == "ewm-zscore+fake-joint"
    assert {a["status"] for a in alerts} == {"firing", "resolved"}
    state = pipeline.models.machine("press-1", 0, 0.0)
    assert state.joint is not None and state.joint.learned == 400  # one per machine, every reading
    assert len(pipeline.models) == 3  # two sensor models and the machine model


def test_a_model_without_contributions_implicates_every_sensor_equally(fake_models: None) -> None:
    _, alerts = _run("fake-blameless")
    firing = next(a for a in alerts if a["status"] == "firing")
    assert {s["name"]: s["contribution"] for s in firing["sensors"]} == {"current": 0.5, "load": 0.5}


def test_the_machine_model_is_part_of_the_checkpointed_state(fake_models: None) -> None:
    pipeline, _ = _run("fake-joint")
    state = pipeline.models.machine("press-1", 0, 0.0)
    restored = pickle.loads(pickle.dumps(state))
    assert restored.joint is not None and restored.joint.learned == state.joint.learned
    # state written before the machine model existed (six fields) restores without one
    old = pickle.loads(pickle.dumps(state))
    old.__setstate__(state.__getstate__()[:6])
    assert old.joint is None and old.models == 2


def test_no_machine_model_by_choice() -> None:
    pipeline, _ = _run("")
    assert pipeline.models.machine("press-1", 0, 0.0).joint is None
