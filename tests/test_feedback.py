"""Operator feedback, pure logic: each action, applied once, bad messages, and the exact undo of a
false positive's learning (models after the undo == models that never saw the episode)."""

from __future__ import annotations

import io
import json
import pickle
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import jsonschema
import orjson
import pytest
from fakes import FakeClock, FakeRecord, records_from, validate_alert
from kafka_helpers import TEST_SIGNING_KEY
from prometheus_client import CollectorRegistry

from anomstream.detectors.entities import MachineState
from anomstream.detectors.policy import Transition
from anomstream.stream import alert_book
from anomstream.stream.config import load_config
from anomstream.stream.errors import InvalidRecord
from anomstream.stream.feedback import SCHEMA, parse_feedback
from anomstream.stream.metrics import Metrics
from anomstream.stream.pipeline import DLQ_REASON_HEADER, Pipeline
from anomstream.stream.simulator import FaultSpec, Simulator

MACHINE = "press-01"
TOPIC = "anomstream.feedback"
FEEDBACK_SCHEMA = json.loads(
    resources.files("anomstream.config").joinpath("schemas/feedback-v1.json").read_text("utf-8")
)


def _pipeline(**overrides: object) -> tuple[Pipeline, CollectorRegistry]:
    registry = CollectorRegistry()
    config = load_config(environ={}, overrides={"state.signing_key": TEST_SIGNING_KEY, **overrides})
    return Pipeline(config, metrics=Metrics(registry), clock=FakeClock()), registry


def _records(count: int = 1100, start: int = 600, duration: int = 80) -> list[FakeRecord]:
    """One machine, a level shift on temp_c: one anomaly episode."""
    sim = Simulator(machines=1, seed=3, start_time=1_700_000_000.0, faults=[
        FaultSpec(MACHINE, "temp_c", "level_shift", start_index=start, duration=duration, magnitude=5.0),
    ])
    return records_from(sim.readings(count), partitions=1)


def _run(pipeline: Pipeline, records: list[FakeRecord]) -> list[dict[str, Any]]:
    alerts = []
    for i in range(0, len(records), 100):
        alerts += [validate_alert(m.value) for m in pipeline.process(records[i : i + 100]).alerts]
    return alerts


def _message(alert_id: str, action: str, **extra: Any) -> dict[str, Any]:
    return {"schema": SCHEMA, "alert_id": alert_id, "machine_id": MACHINE, "action": action,
            "by": "op-7", "at": "2026-12-02T03:00:00Z", **extra}


def _feedback(pipeline: Pipeline, message: dict[str, Any] | bytes, offset: int = 0) -> Any:
    value = message if isinstance(message, bytes) else orjson.dumps(message)
    return pipeline.process([FakeRecord(TOPIC, 0, offset, 0, MACHINE.encode(), value)])


def _count(registry: CollectorRegistry, action: str, result: str) -> float:
    labels = {"action": action, "result": result}
    return registry.get_sample_value("anomstream_feedback_total", labels) or 0.0


def _ts(record: FakeRecord) -> float:
    return record.timestamp / 1000.0


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _pickled(obj: Any) -> bytes:
    """Pickle without the memo: equal states give equal bytes, whichever objects they share."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.fast = True
    pickler.dump(obj)
    return buffer.getvalue()


def _models(pipeline: Pipeline) -> dict[str, bytes]:
    """The machine's models, pickled: what the undo must give back exactly."""
    state = pipeline.models.find(MACHINE)
    assert state is not None
    out = {name: _pickled(entity) for name, entity in state.entities.items()}
    out["*joint"] = _pickled(state.joint)
    return out


def _scores(pipeline: Pipeline, records: list[FakeRecord]) -> list[float]:
    """Scores of further readings (score_one: nothing learned)."""
    state = pipeline.models.find(MACHINE)
    assert state is not None
    out = []
    for record in records:
        sensors = orjson.loads(record.value)["sensors"]
        out += [round(state.entities[s].model.score_one({"value": v}), 12) for s, v in sensors.items()]
        out.append(round(state.joint.model.score_one(sensors), 12) if state.joint else 0.0)
    return out


CONFIGS = [{}, {"detector.name": "ewm-zscore", "detector.machine_model": ""}]


@pytest.mark.parametrize("overrides", CONFIGS, ids=["default", "ewm-zscore"])
def test_false_positive_after_resolve_undoes_the_episode_exactly(overrides: dict[str, Any]) -> None:
    records = _records()
    pipeline, registry = _pipeline(**overrides)
    alerts = _run(pipeline, records[:900])
    assert [a["status"] for a in alerts] == ["firing", "resolved"]
    firing, resolved = alerts
    first, last = _epoch(firing["started_at"]), _epoch(resolved["event_time"])
    out = _feedback(pipeline, _message(firing["alert_id"], "false_positive"))
    assert out.alerts == [] and out.dead_letters == []  # already resolved: nothing to publish
    assert _count(registry, "false_positive", "applied") == 1
    _run(pipeline, records[900:1000])
    # The reference never saw the episode: from its first anomalous reading to the resolving one.
    episode = [r for r in records if first - 1e-6 <= _ts(r) <= last + 1e-6]
    assert 80 <= len(episode) <= 200
    reference, _ = _pipeline(**overrides)
    _run(reference, [r for r in records[:1000] if r not in episode])
    assert _models(pipeline) == _models(reference)
    assert _scores(pipeline, records[1000:]) == _scores(reference, records[1000:])
    # and the episode did change the models: the undo is not vacuous
    untouched, _ = _pipeline(**overrides)
    _run(untouched, records[:1000])
    assert _models(untouched) != _models(pipeline)


def test_undoing_the_first_of_two_episodes_keeps_the_second() -> None:
    sim = Simulator(machines=1, seed=3, start_time=1_700_000_000.0, faults=[
        FaultSpec(MACHINE, "temp_c", "level_shift", start_index=500, duration=60, magnitude=5.0),
        FaultSpec(MACHINE, "current_a", "level_shift", start_index=750, duration=60, magnitude=5.0),
    ])
    records = records_from(sim.readings(1000), partitions=1)
    pipeline, _ = _pipeline()
    alerts = _run(pipeline, records)
    episodes = [a for a in alerts if a["status"] == "resolved"]
    assert len(episodes) == 2
    first = episodes[0]
    _feedback(pipeline, _message(first["alert_id"], "false_positive"))
    start, end = _epoch(first["started_at"]), _epoch(first["event_time"])
    reference, _ = _pipeline()
    _run(reference, [r for r in records if not start - 1e-6 <= _ts(r) <= end + 1e-6])
    assert _models(pipeline) == _models(reference)
    # the second episode is still undoable, from the shortened log
    second = episodes[1]
    _feedback(pipeline, _message(second["alert_id"], "false_positive"), 1)
    start2, end2 = _epoch(second["started_at"]), _epoch(second["event_time"])
    reference, _ = _pipeline()
    _run(reference, [r for r in records if not (start - 1e-6 <= _ts(r) <= end + 1e-6
                                                 or start2 - 1e-6 <= _ts(r) <= end2 + 1e-6)])
    assert _models(pipeline) == _models(reference)


def test_after_a_rebaseline_a_new_base_keeps_later_episodes_undoable() -> None:
    records = _records()

    def run(pipeline: Pipeline, keep: Any = lambda r: True) -> list[dict[str, Any]]:
        _run(pipeline, [r for r in records[:300] if keep(r)])
        state = pipeline.models.find(MACHINE)
        assert state is not None
        pipeline.models.reset_sensors(state)  # what a maintenance rebaseline does
        return _run(pipeline, [r for r in records[300:900] if keep(r)])

    pipeline, registry = _pipeline()
    firing, resolved = run(pipeline)
    _feedback(pipeline, _message(firing["alert_id"], "false_positive"))
    assert _count(registry, "false_positive", "applied") == 1
    start, end = _epoch(firing["started_at"]), _epoch(resolved["event_time"])
    reference, _ = _pipeline()
    run(reference, lambda r: not start - 1e-6 <= _ts(r) <= end + 1e-6)
    assert _models(pipeline) == _models(reference)


def test_models_restarted_since_the_episode_are_left_alone() -> None:
    records = _records()
    pipeline, registry = _pipeline()
    firing, _resolved = _run(pipeline, records[:850])
    state = pipeline.models.find(MACHINE)
    assert state is not None
    pipeline.models.reset_sensors(state)  # what a maintenance rebaseline does
    _run(pipeline, records[850:900])
    before = _models(pipeline)
    _feedback(pipeline, _message(firing["alert_id"], "false_positive"))
    assert _count(registry, "false_positive", "no_snapshot") == 1
    assert _models(pipeline) == before
    assert len(pipeline.models) == len(state.entities) + 1  # the store's model count still holds


def test_false_positive_on_an_open_alert_resolves_it_and_undoes_its_readings() -> None:
    records = _records()
    pipeline, registry = _pipeline()
    alerts = _run(pipeline, records[:650])
    (firing,) = alerts
    out = _feedback(pipeline, _message(firing["alert_id"], "false_positive", note="test run"))
    (resolved,) = [validate_alert(m.value) for m in out.alerts]
    assert resolved["status"] == "resolved" and resolved["alert_id"] == firing["alert_id"]
    assert resolved["detail"] == "false_positive by op-7: test run"
    state = pipeline.models.find(MACHINE)
    assert state is not None and alert_book.open_alerts(state) == []
    (entry,) = [e for e in state.ops["alerts"]["recent"] if e["alert_id"] == firing["alert_id"]]
    assert entry["feedback"][0]["action"] == "false_positive" and entry["feedback"][0]["result"] == "applied"
    first = _epoch(firing["started_at"])
    reference, _ = _pipeline()
    _run(reference, [r for r in records[:650] if _ts(r) < first - 1e-6])
    assert _models(pipeline) == _models(reference)
    assert registry.get_sample_value(
        "anomstream_alerts_open", {"kind": "anomaly", "severity": firing["severity"]}) == 0


def test_feedback_is_applied_once() -> None:
    pipeline, registry = _pipeline()
    (firing,) = _run(pipeline, _records()[:650])
    message = _message(firing["alert_id"], "false_positive")
    assert len(_feedback(pipeline, message, 0).alerts) == 1
    again = _feedback(pipeline, message, 1)
    assert again.alerts == [] and again.dead_letters == []
    assert _count(registry, "false_positive", "duplicate") == 1
    state = pipeline.models.find(MACHINE)
    assert state is not None and state.ops["feedback"]["applied"] == [f"{firing['alert_id']}:false_positive"]
    # another action on the same alert is another decision: applied
    _feedback(pipeline, _message(firing["alert_id"], "confirmed"), 2)
    assert _count(registry, "confirmed", "applied") == 1


def test_confirmed_is_recorded_on_the_alert_and_counted() -> None:
    pipeline, registry = _pipeline()
    (firing,) = _run(pipeline, _records()[:650])
    before = _models(pipeline)
    out = _feedback(pipeline, _message(firing["alert_id"], "confirmed", note="bearing worn"))
    assert out.alerts == [] and _models(pipeline) == before  # kept: still open, models untouched
    state = pipeline.models.find(MACHINE)
    assert state is not None
    (entry,) = alert_book.open_alerts(state)
    assert entry["feedback"] == [{"action": "confirmed", "by": "op-7", "at": _epoch("2026-12-02T03:00:00Z"),
                                  "note": "bearing worn", "result": "applied"}]
    assert _count(registry, "confirmed", "applied") == 1


def test_maintenance_done_resets_the_named_sensors_only_and_resolves_their_alert() -> None:
    pipeline, registry = _pipeline()
    (firing,) = _run(pipeline, _records()[:650])
    alert_sensors = [s["name"] for s in firing["sensors"]]
    state = pipeline.models.find(MACHINE)
    assert state is not None
    others = {name: _pickled(e) for name, e in state.entities.items() if name not in alert_sensors}
    out = _feedback(pipeline, _message(firing["alert_id"], "maintenance_done"))
    (resolved,) = [validate_alert(m.value) for m in out.alerts]
    assert resolved["status"] == "resolved" and resolved["detail"] == "maintenance_done by op-7"
    assert not set(alert_sensors) & set(state.entities)  # their baselines restart
    assert {n: _pickled(e) for n, e in state.entities.items()} == others  # the rest untouched
    assert state.joint is None  # it learned the old relations of the reset sensors
    assert _count(registry, "maintenance_done", "applied") == 1


def test_maintenance_done_on_other_sensors_keeps_the_alert_open() -> None:
    pipeline, _ = _pipeline()
    (firing,) = _run(pipeline, _records()[:650])
    named = [s["name"] for s in firing["sensors"]]
    assert named[0] == "temp_c"
    # a sensor the alert does not name (the machine model may name a few beside temp_c)
    other = next(s for s in ("pressure_bar", "current_a", "speed_rpm", "vib_rms") if s not in named)
    out = _feedback(pipeline, _message(firing["alert_id"], "maintenance_done", sensors=[other]))
    assert out.alerts == []
    state = pipeline.models.find(MACHINE)
    assert state is not None and other not in state.entities and "temp_c" in state.entities
    assert len(alert_book.open_alerts(state)) == 1


def test_maintenance_done_on_a_health_code_restarts_the_sensor_and_resolves_the_code() -> None:
    sim = Simulator(machines=1, seed=3, start_time=1_700_000_000.0, faults=[
        FaultSpec(MACHINE, "pressure_bar", "stuck", start_index=400, duration=300),
    ])
    pipeline, registry = _pipeline()
    alerts = _run(pipeline, records_from(sim.readings(500), partitions=1))
    (code,) = [a for a in alerts if a["kind"] != "anomaly"]
    assert code["status"] == "firing" and [s["name"] for s in code["sensors"]] == ["pressure_bar"]
    out = _feedback(pipeline, _message(code["alert_id"], "maintenance_done", note="new transmitter"))
    (resolved,) = [validate_alert(m.value) for m in out.alerts]
    assert (resolved["alert_id"], resolved["kind"], resolved["status"]) == (code["alert_id"], code["kind"], "resolved")
    state = pipeline.models.find(MACHINE)
    assert state is not None
    assert "pressure_bar" not in state.entities and "pressure_bar" not in pipeline.health.describe(state)
    assert "temp_c" in state.entities and "temp_c" in pipeline.health.describe(state)
    assert [e["kind"] for e in alert_book.open_alerts(state)] == []
    assert _count(registry, "maintenance_done", "applied") == 1


def test_false_positive_too_late_resolves_nothing_and_changes_no_model() -> None:
    records = _records()
    pipeline, registry = _pipeline(**{"feedback.undo_window": 50})
    firing, _resolved = _run(pipeline, records[:1000])
    before = _models(pipeline)
    _feedback(pipeline, _message(firing["alert_id"], "false_positive"))
    assert _count(registry, "false_positive", "too_late") == 1
    assert _models(pipeline) == before


def test_false_positive_without_snapshot_after_a_restart_still_resolves() -> None:
    records = _records()
    pipeline, registry = _pipeline()
    (firing,) = _run(pipeline, records[:650])
    state = pipeline.models.find(MACHINE)
    restarted, registry = _pipeline()
    assert restarted.models.codec is not None
    restarted.models.install(MACHINE, 0, restarted.models.codec.dumps(state))  # as from the changelog
    out = _feedback(restarted, _message(firing["alert_id"], "false_positive"))
    assert [validate_alert(m.value)["status"] for m in out.alerts] == ["resolved"]
    assert _count(registry, "false_positive", "no_snapshot") == 1


def test_false_positive_on_a_health_code_is_recorded_only() -> None:
    pipeline, registry = _pipeline()
    _run(pipeline, _records()[:200])
    state = pipeline.models.find(MACHINE)
    assert state is not None
    stuck = Transition("firing", "warning", 1_700_000_100.0, 1.0, {"temp_c": 1.0}, kind="stuck")
    ident = "0123456789abcdef0123456789abcdef"
    alert_book.record(state, ident, stuck, 1_700_000_100.0)
    out = _feedback(pipeline, _message(ident, "false_positive"))
    assert out.alerts == [] and _count(registry, "false_positive", "recorded") == 1
    assert alert_book.find(state, ident)["feedback"][0]["result"] == "recorded"  # type: ignore[index]


def test_undo_window_zero_keeps_no_snapshots() -> None:
    pipeline, registry = _pipeline(**{"feedback.undo_window": 0})
    (firing,) = _run(pipeline, _records()[:650])
    assert len(pipeline.feedback.undo) == 0
    assert len(_feedback(pipeline, _message(firing["alert_id"], "false_positive")).alerts) == 1
    assert _count(registry, "false_positive", "no_snapshot") == 1


GOOD = {"schema": SCHEMA, "alert_id": "0" * 32, "machine_id": MACHINE, "action": "confirmed",
        "by": "op", "at": "2026-12-02T03:00:00+01:00"}
BAD = [
    (b"{nope", "not JSON"),
    (b"[1]", "not a JSON object"),
    ({**GOOD, "schema": "anomstream.feedback/v2"}, "schema must be"),
    ({k: v for k, v in GOOD.items() if k != "by"}, "missing by"),
    ({**GOOD, "extra": 1}, "unknown field extra"),
    ({**GOOD, "action": "wrong"}, "action must be one of"),
    ({**GOOD, "alert_id": "XYZ"}, "alert_id must be 32"),
    ({**GOOD, "machine_id": ""}, "machine_id must be a non-empty string"),
    ({**GOOD, "at": "yesterday"}, "at is not an ISO-8601 time"),
    ({**GOOD, "at": "2026-12-02T03:00:00"}, "at needs a time zone"),
    ({**GOOD, "at": 1.7e9}, "at must be an ISO-8601 time string"),
    ({**GOOD, "sensors": ["t"]}, "sensors are only for maintenance_done"),
    ({**GOOD, "action": "maintenance_done", "sensors": []}, "non-empty list"),
    ({**GOOD, "action": "maintenance_done", "sensors": ["t", "t"]}, "distinct"),
    ({**GOOD, "note": 5}, "note must be a string"),
    ({**GOOD, "by": "x" * 201}, "by longer than 200"),
]


@pytest.mark.parametrize(("message", "why"), BAD)
def test_bad_messages_are_rejected_with_the_reason(message: Any, why: str) -> None:
    value = message if isinstance(message, bytes) else orjson.dumps(message)
    with pytest.raises(InvalidRecord) as caught:
        parse_feedback(MACHINE.encode(), value)
    assert caught.value.reason == "bad_feedback" and why in caught.value.detail
    if isinstance(message, dict) and "at" not in why:  # the schema says the same (but date-time)
        assert not jsonschema.Draft202012Validator(FEEDBACK_SCHEMA).is_valid(message)


def test_the_schema_accepts_what_the_parser_accepts() -> None:
    validator = jsonschema.Draft202012Validator(FEEDBACK_SCHEMA, format_checker=jsonschema.FormatChecker())
    for message in (GOOD, {**GOOD, "action": "maintenance_done", "sensors": ["temp_c"], "note": ""}):
        validator.validate(message)
        parse_feedback(MACHINE.encode(), orjson.dumps(message))
    parsed = parse_feedback(None, orjson.dumps(GOOD))  # no key: accepted (routed by the producer)
    assert parsed.at == datetime(2026, 12, 2, 2, 0, tzinfo=UTC).timestamp()


def test_key_must_be_the_machine() -> None:
    with pytest.raises(InvalidRecord, match="record key differs"):
        parse_feedback(b"lathe-02", orjson.dumps(GOOD))


def test_unusable_feedback_becomes_a_dead_letter_with_its_reason() -> None:
    pipeline, registry = _pipeline()
    _run(pipeline, _records()[:200])
    out = pipeline.process([
        FakeRecord(TOPIC, 0, 0, 0, MACHINE.encode(), b"{"),
        FakeRecord(TOPIC, 0, 1, 0, b"ghost", orjson.dumps({**GOOD, "machine_id": "ghost"})),
        FakeRecord(TOPIC, 0, 2, 0, MACHINE.encode(), orjson.dumps(GOOD)),
    ])
    reasons = [dict(d.headers)[DLQ_REASON_HEADER] for d in out.dead_letters]
    assert reasons == [b"bad_feedback", b"unknown_machine", b"unknown_alert"]
    assert _count(registry, "confirmed", "unknown_machine") == 1
    assert _count(registry, "confirmed", "unknown_alert") == 1
    assert registry.get_sample_value("anomstream_readings_rejected_total", {"reason": "unknown_alert"}) == 1
    # the feedback records' offsets are committed like the input's
    assert out.offsets == {(TOPIC, 0): 3}


def test_feedback_state_is_plain_versioned_data() -> None:
    pipeline, _ = _pipeline()
    (firing,) = _run(pipeline, _records()[:650])
    _feedback(pipeline, _message(firing["alert_id"], "confirmed"))
    state = pipeline.models.find(MACHINE)
    assert state is not None and state.dirty
    assert json.loads(json.dumps(state.ops["feedback"])) == state.ops["feedback"]
    assert state.ops["feedback"]["v"] == 1
    restored = pickle.loads(pickle.dumps(state))
    assert isinstance(restored, MachineState) and restored.ops["feedback"] == state.ops["feedback"]


def test_undo_logs_of_evicted_machines_are_dropped() -> None:
    pipeline, _ = _pipeline(**{"detector.max_entities": 60})  # 10 live machines of 6 models
    sim = Simulator(machines=300, seed=2, start_time=1.7e9, fault_rate=0)
    pipeline.process(records_from(sim.readings(300 * 3)))
    assert pipeline.models.machines <= 10 and pipeline.models.evicted > 500
    assert len(pipeline.feedback.undo) <= pipeline.models.machines + 64
