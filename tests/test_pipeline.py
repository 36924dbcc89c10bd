"""The pure pipeline with fake records and a fake clock: no broker."""

from __future__ import annotations

from datetime import datetime

import orjson
import pytest
from fakes import FakeClock, FakeRecord, records_from, validate_alert
from kafka_helpers import TEST_SIGNING_KEY
from prometheus_client import CollectorRegistry

from anomstream.stream.config import load_config
from anomstream.stream.metrics import Metrics
from anomstream.stream.pipeline import DLQ_REASON_HEADER, Pipeline
from anomstream.stream.simulator import FaultSpec, Simulator


def _pipeline(**overrides: object) -> tuple[Pipeline, CollectorRegistry]:
    registry = CollectorRegistry()
    config = load_config(environ={}, overrides={"state.signing_key": TEST_SIGNING_KEY, **overrides})
    return Pipeline(config, metrics=Metrics(registry), clock=FakeClock()), registry


def _process(pipeline: Pipeline, records: list[FakeRecord], batch: int = 500) -> list:
    return [pipeline.process(records[i : i + batch]) for i in range(0, len(records), batch)]


@pytest.mark.parametrize("detector", ["default", "ewm-zscore"])
def test_level_shift_fires_once_on_the_right_sensor_and_resolves(detector: str) -> None:
    sim = Simulator(machines=3, seed=3, start_time=1_700_000_000.0, faults=[
        FaultSpec(machine="lathe-02", sensor="temp_c", kind="level_shift", start_index=600, duration=80,
                  magnitude=5.0),
    ])
    pipeline, registry = _pipeline(**{"detector.name": detector})
    outputs = _process(pipeline, records_from(sim.readings(3 * 1200)))
    alerts = [validate_alert(m.value) for o in outputs for m in o.alerts]
    assert [(a["machine_id"], a["status"]) for a in alerts] == [("lathe-02", "firing"), ("lathe-02", "resolved")]
    firing, resolved = alerts
    assert "temp_c" in [s["name"] for s in firing["sensors"]]
    assert firing["alert_id"] == resolved["alert_id"]
    (fault,) = sim.faults
    started = datetime.fromisoformat(firing["started_at"]).timestamp()
    fired = datetime.fromisoformat(firing["event_time"]).timestamp()
    ended = datetime.fromisoformat(resolved["event_time"]).timestamp()
    # detected within 10 readings of the fault's start; resolved after its end
    assert fault.start_ts - 0.001 <= started <= fired <= fault.start_ts + 10 * sim.interval
    assert ended > fault.end_ts
    assert registry.get_sample_value("anomstream_alerts_total", {"kind": "anomaly", "severity": firing["severity"], "status": "firing"}) == 1


def test_invalid_records_become_dead_letters_and_valid_ones_are_scored() -> None:
    pipeline, registry = _pipeline(**{"detector.warmup": 0})
    good = orjson.dumps({"machine_id": "m1", "ts": 1.7e9, "sensors": {"t": 1.0}})
    records = [
        FakeRecord("telemetry", 0, 0, 0, b"m1", good),
        FakeRecord("telemetry", 0, 1, 0, b"m1", b"{broken", [("trace", b"abc")]),
        FakeRecord("telemetry", 0, 2, 0, b"m1", good),
        FakeRecord("telemetry", 1, 7, 0, b"m2", orjson.dumps({"ts": 1.7e9, "sensors": {"t": "hot"}})),
    ]
    out = pipeline.process(records)
    assert out.readings == 2
    assert [m.value for m in out.dead_letters] == [b"{broken", records[3].value]
    headers = dict(out.dead_letters[0].headers)
    assert headers[DLQ_REASON_HEADER] == b"bad_json"
    assert headers["trace"] == b"abc"  # the producer's headers are kept
    assert headers["anomstream-source-offset"] == b"1"
    assert dict(out.dead_letters[1].headers)[DLQ_REASON_HEADER] == b"bad_value"
    assert out.offsets == {("telemetry", 0): 3, ("telemetry", 1): 8}
    assert registry.get_sample_value("anomstream_readings_consumed_total", {"topic": "telemetry"}) == 4
    assert registry.get_sample_value("anomstream_readings_rejected_total", {"reason": "bad_json"}) == 1
    assert registry.get_sample_value("anomstream_readings_rejected_total", {"reason": "bad_value"}) == 1
    assert registry.get_sample_value("anomstream_end_to_end_latency_seconds_count") == 2


def test_warmup_readings_never_alert() -> None:
    pipeline, registry = _pipeline(**{"detector.warmup": 100})
    records = [
        FakeRecord("t", 0, i, 0, b"m", orjson.dumps({"ts": 1.7e9 + i, "sensors": {"x": 1e6 * (i % 2)}}))
        for i in range(100)
    ]
    out = pipeline.process(records)
    assert out.alerts == [] and registry.get_sample_value("anomstream_readings_scored_total") == 0


def test_machine_mode_uses_one_model_per_machine() -> None:
    pipeline, registry = _pipeline(**{"detector.entity": "machine", "detector.warmup": 10})
    sim = Simulator(machines=2, seed=1, start_time=1.7e9, fault_rate=0)
    pipeline.process(records_from(sim.readings(100)))
    assert len(pipeline.models) == 2
    assert registry.get_sample_value("anomstream_active_models") == 2


def test_templates_choose_detectors_per_entity() -> None:
    pipeline, _ = _pipeline(**{"detector.templates": [{"name": "sad", "sensor": "vib_*"}]})
    sim = Simulator(machines=1, seed=1, start_time=1.7e9, fault_rate=0)
    pipeline.process(records_from(sim.readings(5)))
    detectors = {key[1]: entity.detector for key, entity in pipeline.models.items()}
    assert detectors["vib_rms"] == "sad" and detectors["temp_c"] == "default"
