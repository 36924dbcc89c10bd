"""Maintenance windows and operating modes: the pure logic (`Modes`), the control messages and
the pipeline's gate, with fake records and a fake clock. The simulated part replacement here is
the same scenario `test_modes_broker.py` runs through Kafka."""

from __future__ import annotations

import copy
import math
import random
import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import jsonschema
import orjson
import pytest
from fakes import FakeClock, FakeRecord, duty_cycle, validate_alert
from kafka_helpers import TEST_SIGNING_KEY
from prometheus_client import CollectorRegistry

from anomstream.detectors.entities import MachineState
from anomstream.detectors.mode_rules import ModeRule
from anomstream.detectors.modes import DEFAULT_MODE, MAINTENANCE, Modes
from anomstream.detectors.policy import Transition
from anomstream.stream.config import load_config
from anomstream.stream.errors import ConfigError, InvalidRecord
from anomstream.stream.metrics import Metrics
from anomstream.stream.pipeline import DLQ_REASON_HEADER, Pipeline
from anomstream.stream.simulator import FaultSpec, Simulator
from anomstream.stream.state_codec import codec_from_config

# ----------------------------------------------------------------------------- the scenario
# One press, one reading a second. A temperature fault is open when a maintenance window starts
# (it must resolve then); during the window the machine is stopped and two sensors are
# unplugged; the work replaces a part, so vibration and current sit at a new level afterwards;
# a genuine fault comes well after the new warm-up.
T0 = 1_800_000_000.0
MACHINE = "press-01"
MAINT_START, MAINT_END = 400, 500
FAULT_AT = 950  # MAINT_END + warm-up (150) + 300
TOTAL = 1100
UNPLUGGED = ("pressure_bar", "speed_rpm")
TOPIC, CONTROL = "telemetry", "anomstream.control"


def ts(index: int) -> float:
    return T0 + index  # one machine, interval 1 s: no stagger


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def part_replacement() -> list[tuple[bytes, bytes]]:
    """(key, value) of every reading of the scenario, in order."""
    sim = Simulator(machines=1, seed=5, start_time=T0, faults=[
        FaultSpec(MACHINE, "temp_c", "level_shift", start_index=370, duration=60, magnitude=6.0),
        FaultSpec(MACHINE, "vib_rms", "level_shift", start_index=MAINT_END, duration=10_000, magnitude=6.0),
        FaultSpec(MACHINE, "current_a", "level_shift", start_index=MAINT_END, duration=10_000, magnitude=4.0),
        FaultSpec(MACHINE, "temp_c", "level_shift", start_index=FAULT_AT, duration=80, magnitude=6.0),
    ])
    out = []
    for r in sim.readings(TOTAL):
        record = r.record
        if MAINT_START <= r.index < MAINT_END:  # stopped, opened up, sensors unplugged
            sensors = record["sensors"]
            sensors["vib_rms"], sensors["current_a"] = 0.0, 0.0
            sensors["temp_c"] = round(sensors["temp_c"] - (r.index - MAINT_START) * 0.1, 2)
            if 420 <= r.index < 480:
                for name in UNPLUGGED:
                    del sensors[name]
        out.append((MACHINE.encode(), orjson.dumps(record)))
    return out


def maintenance_message(machine: str = MACHINE, **fields: Any) -> bytes:
    doc = {"schema": "anomstream.control/v1", "machine_id": machine, "mode": MAINTENANCE,
           "from": iso(ts(MAINT_START)), "until": iso(ts(MAINT_END)), **fields}
    return orjson.dumps(doc)


def alert_index(alert: dict[str, Any]) -> float:
    """The scenario's reading index of an alert's event time."""
    return datetime.fromisoformat(alert["event_time"]).timestamp() - T0


# ----------------------------------------------------------------------------- helpers


def _pipeline(**overrides: object) -> tuple[Pipeline, CollectorRegistry]:
    registry = CollectorRegistry()
    config = load_config(environ={}, overrides={"state.signing_key": TEST_SIGNING_KEY, **overrides})
    return Pipeline(config, metrics=Metrics(registry), clock=FakeClock(T0)), registry


class Feed:
    """Records for one pipeline, with increasing offsets per topic."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.offsets: dict[str, int] = {}
        self.alerts: list[dict[str, Any]] = []
        self.dead: list[Any] = []

    def send(self, topic: str, items: list[tuple[bytes, bytes]], batch: int = 500) -> None:
        records = []
        for key, value in items:
            offset = self.offsets.get(topic, 0)
            self.offsets[topic] = offset + 1
            records.append(FakeRecord(topic, 0, offset, int(T0 * 1000), key, value))
        for i in range(0, len(records), batch):
            out = self.pipeline.process(records[i : i + batch])
            self.alerts += [validate_alert(m.value) for m in out.alerts]
            self.dead += out.dead_letters

    def control(self, value: bytes, key: bytes = MACHINE.encode()) -> None:
        self.send(CONTROL, [(key, value)])

    def readings(self, machine: str, start: int, stop: int, sensors: dict[str, float] | None = None) -> None:
        self.send(TOPIC, [
            (machine.encode(), orjson.dumps({"machine_id": machine, "ts": ts(i), "sensors": sensors or {"t": 1.0 + (i % 7) * 0.01}}))
            for i in range(start, stop)
        ])


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def run_scenario(*, window: bool = True, **overrides: object) -> tuple[Feed, CollectorRegistry]:
    pipeline, registry = _pipeline(**overrides)
    feed = Feed(pipeline)
    data = part_replacement()
    feed.send(TOPIC, data[:MAINT_START - 20])
    if window:  # sent while the machine runs, before the window starts
        feed.control(maintenance_message())
    feed.send(TOPIC, data[MAINT_START - 20:])
    return feed, registry


# ----------------------------------------------------------------------------- Modes, pure


def test_gate_follows_event_time_and_the_latest_started_window() -> None:
    modes = Modes(learning={"setup": "separate", "idle": "pause"})
    state = MachineState()
    assert modes.schedule(state, "m", MAINTENANCE, 100.0, None) == "applied"  # open-ended
    assert modes.schedule(state, "m", "setup", 150.0, 160.0) == "applied"  # inside it
    assert modes.schedule(state, "m", DEFAULT_MODE, 200.0, None) == "applied"  # ends it
    seen = []
    for t in (99.0, 100.0, 120.0, 150.0, 159.0, 160.0, 199.0, 200.0, 300.0):
        g = modes.gate("m", state, t)
        seen.append((t, g.mode, g.learn, g.alert, g.suffix, g.resolve, g.rebaseline))
    assert seen == [
        (99.0, "production", True, True, "", False, False),
        (100.0, "maintenance", False, False, "", True, False),
        (120.0, "maintenance", False, False, "", False, False),
        (150.0, "setup", True, True, "@setup", False, True),  # leaving maintenance, for setup
        (159.0, "setup", True, True, "@setup", False, False),
        (160.0, "maintenance", False, False, "", True, False),  # back to the open maintenance
        (199.0, "maintenance", False, False, "", False, False),
        (200.0, "production", True, True, "", False, True),
        (300.0, "production", True, True, "", False, False),
    ]
    assert state.ops["modes"]["windows"] == []  # every window ended or shadowed: pruned
    # A late reading gets its own time's mode but moves the machine nowhere.
    modes.schedule(state, "m", MAINTENANCE, 400.0, 500.0)
    assert modes.gate("m", state, 410.0).resolve
    late = modes.gate("m", state, 390.0)
    assert (late.mode, late.resolve, late.rebaseline, late.previous) == ("production", False, False, None)
    assert modes.gate("m", state, 420.0).mode == MAINTENANCE


def test_configured_windows_match_machines_and_a_message_overrides_them() -> None:
    config = load_config(environ={}, overrides={"modes.windows": [
        {"machine": "press-*", "mode": "maintenance", "start": iso(1000.0), "until": 2000.0},
        {"machine": "lathe-02", "mode": "idle", "start": datetime.fromtimestamp(1500.0, UTC)},
    ]})
    modes = Modes.from_config(config.modes)
    press, lathe, pump = MachineState(), MachineState(), MachineState()
    assert modes.gate("press-07", press, 999.0).mode == DEFAULT_MODE
    assert "modes" in press.ops  # a machine with planned windows keeps its book
    assert modes.gate("press-07", press, 1000.0).mode == MAINTENANCE
    assert modes.gate("lathe-02", lathe, 1600.0).mode == "idle"
    assert modes.gate("pump-03", pump, 1500.0).mode == DEFAULT_MODE and not pump.ops
    # The control topic ends the planned maintenance early.
    modes.schedule(press, "press-07", DEFAULT_MODE, 1200.0, None)
    gate = modes.gate("press-07", press, 1200.0)
    assert (gate.mode, gate.rebaseline) == (DEFAULT_MODE, True)
    assert modes.gate("press-07", press, 1900.0).mode == DEFAULT_MODE


def test_a_maintenance_between_two_readings_still_resolves_and_rebaselines() -> None:
    modes = Modes()
    state = MachineState()
    modes.gate("m", state, 10.0)
    modes.schedule(state, "m", MAINTENANCE, 100.0, 200.0)
    modes.gate("m", state, 50.0)
    gate = modes.gate("m", state, 300.0)  # switched off for the whole window
    assert (gate.mode, gate.resolve, gate.ended, gate.rebaseline) == (DEFAULT_MODE, True, True, True)


def test_schedule_is_idempotent_and_replaces_a_window_with_the_same_start() -> None:
    modes = Modes()
    state = MachineState()
    assert modes.schedule(state, "m", MAINTENANCE, 100.0, None) == "applied"
    before = copy.deepcopy(state.ops)
    assert modes.schedule(state, "m", MAINTENANCE, 100.0, None) == "duplicate"
    assert state.ops == before
    assert modes.schedule(state, "m", MAINTENANCE, 100.0, 150.0) == "applied"  # its end, later
    assert state.ops["modes"]["windows"] == [[100.0, 150.0, MAINTENANCE]]
    modes.gate("m", state, 160.0)
    assert modes.schedule(state, "m", MAINTENANCE, 100.0, 150.0) == "expired"  # a replay, harmless
    with pytest.raises(ValueError, match="unknown mode"):
        modes.schedule(state, "m", "lunch", 1.0, None)


def test_silence_is_expected_in_maintenance_and_paused_modes_only() -> None:
    modes = Modes(learning={"idle": "pause", "setup": "separate"})
    state = MachineState()
    assert not modes.silence_expected(state, 50.0)
    modes.schedule(state, "m", MAINTENANCE, 100.0, 200.0)
    assert not modes.silence_expected(state, 50.0)
    assert modes.silence_expected(state, 150.0)  # by the schedule, with no reading yet
    modes.gate("m", state, 150.0)
    assert modes.silence_expected(state, 150.0)
    modes.schedule(state, "m", "setup", 300.0, None)
    modes.gate("m", state, 310.0)
    assert not modes.silence_expected(state, 310.0)
    modes.schedule(state, "m", "idle", 400.0, None)
    modes.gate("m", state, 410.0)
    assert modes.silence_expected(state, 410.0)
    assert modes.describe(state)["mode"] == "idle" and modes.describe(state)["learning"] == "pause"


def test_state_is_plain_data_and_survives_a_checkpoint() -> None:
    config = load_config(environ={}, overrides={"state.signing_key": TEST_SIGNING_KEY})
    codec = codec_from_config(config.state)
    assert codec is not None
    modes = Modes.from_config(config.modes)
    state = MachineState()
    modes.schedule(state, "m", MAINTENANCE, 100.0, 200.0)
    modes.gate("m", state, 150.0)
    json.dumps(state.ops["modes"])  # plain, versioned data
    assert state.ops["modes"]["v"] == 1
    restored = codec.loads(codec.dumps(state))
    assert restored.ops == state.ops
    assert modes.gate("m", restored, 160.0).mode == MAINTENANCE
    assert modes.gate("m", restored, 200.0).rebaseline
    info = modes.describe(state)
    assert info["in_maintenance"] and info["windows"] == [
        {"mode": "maintenance", "from": "1970-01-01T00:01:40.000Z", "until": "1970-01-01T00:03:20.000Z"}
    ]


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"modes.learning": {"production": "pause"}}, "modes.learning.production"),
        ({"modes.learning": {"a@b": "pause"}}, "modes.learning.a@b"),
        ({"modes.learning": {"idle": "sleep"}}, "modes.learning.idle"),
        ({"modes.windows": [{"mode": "lunch", "start": 1.0}]}, "modes.windows[0].mode"),
        ({"modes.windows": [{"start": 10.0, "until": 5.0}]}, "modes.windows[0].until"),
        ({"modes.windows": [{"mode": "idle"}]}, "modes.windows[0].start"),
        ({"modes.windows": [{"start": "tomorrow"}]}, "modes.windows[0].start"),
        ({"modes.after_maintenance": "forget"}, "modes.after_maintenance"),
    ],
)
def test_bad_modes_config_names_the_key(overrides: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={}, overrides=overrides)
    assert info.value.key == key


# ----------------------------------------------------------------------------- control messages


@pytest.mark.parametrize(
    ("value", "key", "why"),
    [
        (b"{nope", MACHINE.encode(), "not JSON"),
        (b"[1]", MACHINE.encode(), "not a JSON object"),
        (maintenance_message(schema="anomstream.control/v2"), MACHINE.encode(), "'schema'"),
        (maintenance_message(mode="lunch"), MACHINE.encode(), "'mode' must be one of"),
        (maintenance_message(until=iso(ts(MAINT_START - 1))), MACHINE.encode(), "later than"),
        (maintenance_message(**{"from": None}), MACHINE.encode(), "'from' missing"),
        (maintenance_message(**{"from": "soon"}), MACHINE.encode(), "'from'"),
        (maintenance_message(), b"lathe-02", "record key"),
        (maintenance_message(), None, "record key"),
        (maintenance_message(colour="red"), MACHINE.encode(), "unknown fields"),
        (maintenance_message(machine=""), b"", "machine_id"),
    ],
)
def test_unusable_control_messages_are_dead_letters(value: bytes, key: bytes | None, why: str) -> None:
    pipeline, registry = _pipeline()
    out = pipeline.process([FakeRecord(CONTROL, 0, 0, 0, key, value)])
    (dead,) = out.dead_letters
    headers = dict(dead.headers)
    assert headers[DLQ_REASON_HEADER] == b"bad_control"
    assert why in headers["anomstream-dlq-detail"].decode()
    assert _sample(registry, "anomstream_control_messages_total", result="rejected") == 1
    assert _sample(registry, "anomstream_readings_rejected_total", reason="bad_control") == 1


def test_a_control_message_applied_twice_changes_nothing() -> None:
    pipeline, registry = _pipeline(**{"detector.warmup": 5})
    feed = Feed(pipeline)
    feed.readings(MACHINE, 0, 10)
    feed.control(maintenance_message())
    state = pipeline.models.find(MACHINE)
    assert state is not None
    before = copy.deepcopy(state.ops)
    feed.control(maintenance_message())  # a replay of the control topic
    assert state.ops == before and not feed.dead
    assert _sample(registry, "anomstream_control_messages_total", result="applied") == 1
    assert _sample(registry, "anomstream_control_messages_total", result="duplicate") == 1


def test_a_machine_never_seen_is_accepted_and_its_window_holds_when_it_reports() -> None:
    pipeline, _ = _pipeline(**{"detector.warmup": 5})
    feed = Feed(pipeline)
    feed.control(maintenance_message("pump-09"), key=b"pump-09")
    assert not feed.dead and pipeline.models.find("pump-09") is not None
    feed.readings("pump-09", MAINT_START, MAINT_START + 20)
    state = pipeline.models.find("pump-09")
    assert state is not None and not state.entities  # nothing learned in maintenance
    assert pipeline.modes.describe(state)["mode"] == MAINTENANCE
    feed.readings("pump-09", MAINT_END, MAINT_END + 3)
    assert set(state.entities) == {"t"}


# ----------------------------------------------------------------------------- the pipeline


def test_open_alerts_resolve_when_maintenance_starts_and_nothing_pages_after() -> None:
    feed, registry = run_scenario()
    alerts = feed.alerts
    # the fault open at the window's start: resolved by its first reading
    assert [(a["status"], a["kind"]) for a in alerts[:2]] == [("firing", "anomaly"), ("resolved", "anomaly")]
    assert alert_index(alerts[0]) < MAINT_START and alert_index(alerts[1]) == MAINT_START
    assert alerts[0]["alert_id"] == alerts[1]["alert_id"]
    # nothing during the window nor for the new part; the genuine fault after warm-up pages
    quiet = [a for a in alerts[2:] if alert_index(a) < FAULT_AT]
    assert quiet == []
    later = [a for a in alerts if alert_index(a) >= FAULT_AT and a["status"] == "firing"]
    assert later and "temp_c" in [s["name"] for s in later[0]["sensors"]]
    assert alert_index(later[0]) < FAULT_AT + 10
    assert _sample(registry, "anomstream_alerts_suppressed_total", kind="anomaly") == 0  # nothing evaluated
    state = feed.pipeline.models.find(MACHINE)
    assert state is not None and state.ops["modes"]["windows"] == []  # the window is over and pruned


def test_the_same_data_pages_for_the_new_part_with_resume() -> None:
    feed, _ = run_scenario(**{"modes.after_maintenance": "resume"})
    firing = [a for a in feed.alerts if a["status"] == "firing" and MAINT_START <= alert_index(a) < FAULT_AT]
    assert firing, feed.alerts
    # nothing during the window; the new part's level pages on the first readings after it
    assert MAINT_END <= alert_index(firing[0]) < MAINT_END + 10
    assert {"vib_rms", "current_a"} & {s["name"] for s in firing[0]["sensors"]}


def test_without_the_window_the_work_raises_health_codes_and_the_new_part_pages() -> None:
    feed, _ = run_scenario(window=False)
    fired = {(a["kind"], a["sensors"][0]["name"]) for a in feed.alerts
             if a["status"] == "firing" and MAINT_START <= alert_index(a) < MAINT_END}
    # the stopped machine's zeros and the unplugged sensors are "broken sensors"
    assert fired == {("railed", "vib_rms"), ("railed", "current_a"), ("gap", "pressure_bar"), ("gap", "speed_rpm")}
    after = [a for a in feed.alerts if a["status"] == "firing" and a["kind"] == "anomaly"
             and MAINT_END <= alert_index(a) < FAULT_AT]
    assert after and alert_index(after[0]) < MAINT_END + 10  # the new part's level


def test_maintenance_already_in_force_resolves_open_alerts_when_the_message_arrives() -> None:
    pipeline, _ = _pipeline()
    feed = Feed(pipeline)
    data = part_replacement()
    feed.send(TOPIC, data[:MAINT_START - 20])
    assert [a["status"] for a in feed.alerts] == ["firing"]
    pipeline.clock.now = ts(MAINT_START) + 5  # type: ignore[attr-defined]  # the machine went quiet
    feed.control(maintenance_message())
    assert [a["status"] for a in feed.alerts] == ["firing", "resolved"]
    feed.send(TOPIC, data[MAINT_START:MAINT_START + 10])
    assert len(feed.alerts) == 2  # its readings in the window resolve nothing twice


def test_suppressed_alerts_are_counted_not_published() -> None:
    pipeline, registry = _pipeline(**{"detector.warmup": 5})
    feed = Feed(pipeline)
    feed.readings(MACHINE, 0, 10)
    feed.control(maintenance_message())
    # Nothing is evaluated in maintenance; whatever a tracker raises anyway is counted only.
    pipeline.presence.seen = lambda state, event_time, now, sensors=None: Transition(  # type: ignore[method-assign]
        "firing", "warning", event_time, 1.0, {"t": 1.0}, kind="silent")
    feed.readings(MACHINE, MAINT_START, MAINT_START + 3)
    assert feed.alerts == []
    assert _sample(registry, "anomstream_alerts_suppressed_total", kind="silent") == 3


def test_separate_modes_learn_their_own_models_and_paused_ones_learn_nothing() -> None:
    pipeline, registry = _pipeline(**{"detector.warmup": 5})
    feed = Feed(pipeline)
    sensors = {"a": 1.0, "b": 2.0}
    feed.readings(MACHINE, 0, 20, sensors)
    state = pipeline.models.find(MACHINE)
    assert state is not None and state.joint is not None
    learned = {name: e.learned for name, e in state.entities.items()}
    joint_learned = state.joint.learned
    for mode, start in (("setup", 100), ("idle", 200)):
        feed.control(orjson.dumps({"schema": "anomstream.control/v1", "machine_id": MACHINE, "mode": mode,
                                   "from": ts(start), "until": ts(start + 50)}))
    feed.readings(MACHINE, 100, 130, sensors)  # setup: its own per-sensor and relation models
    assert {name: state.entities[name].learned for name in learned} == learned
    assert state.joint.learned == joint_learned
    assert {n: e.learned for n, e in state.entities.items() if "@" in n} == {"a@setup": 30, "b@setup": 30, "*@setup": 30}
    feed.readings(MACHINE, 200, 230, sensors)  # idle: paused
    assert {n: e.learned for n, e in state.entities.items()} == {**learned, "a@setup": 30, "b@setup": 30, "*@setup": 30}
    feed.readings(MACHINE, 300, 310, sensors)  # production again: the shared models, no rebaseline
    assert {name: state.entities[name].learned for name in learned} == {n: c + 10 for n, c in learned.items()}
    pipeline.clock.now += 60  # type: ignore[attr-defined]  # the gauge's periodic recount
    feed.readings(MACHINE, 310, 311, sensors)
    assert _sample(registry, "anomstream_machines_in_mode", mode="production") == 1
    assert _sample(registry, "anomstream_machines_in_mode", mode="idle") == 0


def test_machines_in_mode_moves_with_the_machines() -> None:
    pipeline, registry = _pipeline(**{"detector.warmup": 5})
    feed = Feed(pipeline)
    for machine in ("m1", "m2", "m3"):
        feed.readings(machine, 0, 3)
    feed.control(maintenance_message("m2"), key=b"m2")
    feed.readings("m2", MAINT_START, MAINT_START + 2)
    assert _sample(registry, "anomstream_machines_in_mode", mode=MAINTENANCE) == 1
    pipeline.clock.now += 60  # type: ignore[attr-defined]
    feed.readings("m1", 3, 4)
    assert _sample(registry, "anomstream_machines_in_mode", mode="production") == 2
    assert _sample(registry, "anomstream_machines_in_mode", mode=MAINTENANCE) == 1
    feed.readings("m2", MAINT_END, MAINT_END + 1)
    assert _sample(registry, "anomstream_machines_in_mode", mode="production") == 3
    assert _sample(registry, "anomstream_machines_in_mode", mode=MAINTENANCE) == 0


def _learned(pipeline: Pipeline, machine: str = MACHINE) -> int:
    state = pipeline.models.find(machine)
    assert state is not None
    return max(e.learned for e in state.entities.values())


def test_a_machine_off_for_the_whole_window_resolves_and_rebaselines_on_its_next_reading() -> None:
    pipeline, _ = _pipeline()
    feed = Feed(pipeline)
    data = part_replacement()
    feed.send(TOPIC, data[:MAINT_START - 20])
    feed.control(maintenance_message())  # announced ahead; the machine then goes off
    assert [a["status"] for a in feed.alerts] == ["firing"]
    feed.send(TOPIC, data[MAINT_END + 100:MAINT_END + 110])
    assert [a["status"] for a in feed.alerts] == ["firing", "resolved"]
    assert alert_index(feed.alerts[1]) == MAINT_END + 100
    assert _learned(pipeline) == 10  # a new baseline from the first reading after the window


def test_a_maintenance_in_force_on_arrival_puts_the_machine_in_it_at_once() -> None:
    pipeline, registry = _pipeline()
    feed = Feed(pipeline)
    data = part_replacement()
    feed.send(TOPIC, data[:MAINT_START - 20])
    pipeline.clock.now = ts(MAINT_START) + 5  # type: ignore[attr-defined]
    feed.control(maintenance_message())
    assert _sample(registry, "anomstream_machines_in_mode", mode=MAINTENANCE) == 1
    state = pipeline.models.find(MACHINE)
    assert state is not None and pipeline.modes.silence_expected(state, pipeline.clock())
    feed.send(TOPIC, data[MAINT_END + 50:MAINT_END + 60])  # it was off until after the window
    assert len(feed.alerts) == 2 and _learned(pipeline) == 10


def test_a_window_that_ended_before_the_last_reading_is_expired() -> None:
    pipeline, registry = _pipeline(**{"detector.warmup": 5})
    feed = Feed(pipeline)
    feed.readings(MACHINE, 0, 10)
    pipeline.clock.now = ts(MAINT_END) + 60  # type: ignore[attr-defined]  # the clock stands in
    feed.control(maintenance_message())
    assert _sample(registry, "anomstream_control_messages_total", result="expired") == 1
    state = pipeline.models.find(MACHINE)
    assert state is not None and "modes" not in state.ops


def test_the_control_schema_describes_the_messages_the_handler_accepts() -> None:
    schema = json.loads(resources.files("anomstream.config").joinpath("schemas/control-v1.json").read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    good = [maintenance_message(), maintenance_message(mode="setup", until=None, reason="WO-1", by="cmms"),
            maintenance_message(**{"from": ts(MAINT_START)})]
    pipeline, _ = _pipeline()
    for value in good:
        validator.validate(orjson.loads(value))
        pipeline.control.decode(FakeRecord(CONTROL, 0, 0, 0, MACHINE.encode(), value))
    for bad in ({"mode": None}, {"colour": "red"}, {"schema": "x"}):
        doc = {**orjson.loads(maintenance_message()), **bad}
        assert not validator.is_valid({k: v for k, v in doc.items() if v is not None})
        with pytest.raises(InvalidRecord):
            pipeline.control.decode(FakeRecord(CONTROL, 0, 0, 0, MACHINE.encode(), orjson.dumps(doc)))


def test_a_configured_window_gates_the_pipeline_like_a_message() -> None:
    pipeline, _ = _pipeline(**{"detector.warmup": 5, "modes.windows": [
        {"machine": "press-*", "start": ts(MAINT_START), "until": ts(MAINT_END)}]})
    feed = Feed(pipeline)
    feed.readings(MACHINE, 0, 20)
    feed.readings("lathe-02", 0, 20)
    feed.readings(MACHINE, MAINT_START, MAINT_START + 30)
    feed.readings("lathe-02", MAINT_START, MAINT_START + 30)
    assert _learned(pipeline, MACHINE) == 20 and _learned(pipeline, "lathe-02") == 50
    feed.readings(MACHINE, MAINT_END, MAINT_END + 3)
    assert _learned(pipeline, MACHINE) == 3  # rebaselined


# ----------------------------------------------------------------------------- settling


def test_a_machine_back_from_a_pause_settles_for_settle_readings() -> None:
    modes = Modes(learning={"idle": "pause"}, after_maintenance="resume", settle=3)
    state = MachineState()
    modes.schedule(state, MACHINE, "idle", 10.0, 20.0)
    modes.schedule(state, MACHINE, MAINTENANCE, 30.0, 40.0)
    gates = [(t, modes.gate(MACHINE, state, float(t))) for t in range(0, 50)]
    assert [t for t, g in gates if g.settling] == [20, 21, 22, 40, 41, 42]
    assert all(g.learn for t, g in gates if g.settling)
    modes.schedule(state, MACHINE, "idle", 60.0, 70.0)
    modes.gate(MACHINE, state, 65.0)
    modes.gate(MACHINE, state, 70.0)
    assert modes.describe(state)["settling"] == 2  # on-call sees why nothing pages
    # A maintenance that rebaselines needs none: the models' own warm-up covers the restart.
    modes = Modes(settle=3)
    state = MachineState()
    modes.schedule(state, MACHINE, MAINTENANCE, 30.0, 40.0)
    assert not any(modes.gate(MACHINE, state, float(t)).settling for t in range(0, 50))
    # Off by default, and a book from before `settle` existed has nothing left to settle.
    modes = Modes(learning={"idle": "pause"})
    state = MachineState()
    modes.schedule(state, MACHINE, "idle", 10.0, 20.0)
    assert not any(modes.gate(MACHINE, state, float(t)).settling for t in range(0, 30))
    with pytest.raises(ValueError, match="settle"):
        Modes(settle=-1)
    assert Modes.from_config(load_config(environ={}, overrides={"modes.settle": 7}).modes).settle == 7


def _restart(*, settle: int, fault: bool = False, by_rule: bool = False) -> list[dict[str, Any]]:
    """A machine whose temperature follows its load through a lag is declared idle for 300
    readings (it cools down), then restarts cold; with `fault`, its current reads 30 A high from
    the restart on. The anomaly alerts of the shipped config. The stop is declared as a window,
    or, `by_rule`, by a rule on the current (idle while it reads below 1 A)."""
    declared: dict[str, Any] = (
        {"modes.rules": [{"machine": "press-*", "sensor": "current_a", "below": 1.0, "mode": "idle"}]}
        if by_rule else
        {"modes.windows": [{"machine": MACHINE, "mode": "idle", "start": ts(1500), "until": ts(1800)}]}
    )
    pipeline, _ = _pipeline(**{"modes.settle": settle, **declared})
    feed = Feed(pipeline)
    rng = random.Random(9)
    temp, items = 40.0, []
    for i in range(2200):
        load = duty_cycle(i)
        if 1500 <= i < 1800:
            temp += (22.0 - temp) / 50
            current = 0.0
        else:
            temp += (40.0 + 20.0 * load - temp) / 20
            current = 10.0 + 20.0 * load + rng.gauss(0.0, 0.3) + (30.0 if fault and i >= 1800 else 0.0)
        sensors = {"current_a": round(current, 3), "temp_c": round(temp + rng.gauss(0.0, 0.2), 2)}
        items.append((MACHINE.encode(), orjson.dumps({"machine_id": MACHINE, "ts": ts(i), "sensors": sensors})))
    feed.send(TOPIC, items)
    return [a for a in feed.alerts if a["kind"] == "anomaly" and a["status"] == "firing"]


def test_a_cold_restart_after_idle_pages_unless_the_machine_settles() -> None:
    unsettled = _restart(settle=0)
    assert [alert_index(a) for a in unsettled] == [1800]  # the cold restart, every time
    assert unsettled[0]["sensors"][0]["name"] == "temp_c"
    assert _restart(settle=60) == []
    # A machine that restarts broken still pages, as soon as it has had its settling time.
    broken = _restart(settle=60, fault=True)
    assert [alert_index(a) for a in broken] == [1860]
    assert broken[0]["sensors"][0]["name"] == "current_a"


# ----------------------------------------------------------------------------- rules


def test_a_rule_reads_the_mode_off_the_reading_where_the_schedule_says_production() -> None:
    modes = Modes(learning={"idle": "pause"}, rules=[ModeRule("press-*", "speed_rpm", "idle", below=50.0)])
    state = MachineState()
    running, stopped = {"speed_rpm": 1480.0, "temp_c": 40.0}, {"speed_rpm": 0.0, "temp_c": 30.0}
    assert modes.gate(MACHINE, state, 1.0, running).mode == DEFAULT_MODE
    assert "modes" not in state.ops  # a running machine with no window costs nothing
    gate = modes.gate(MACHINE, state, 2.0, stopped)
    assert (gate.mode, gate.learn, gate.alert, gate.previous) == ("idle", False, False, DEFAULT_MODE)
    assert modes.gate(MACHINE, state, 3.0, {"temp_c": 30.0}).mode == "idle"  # speed missing
    assert modes.gate(MACHINE, state, 4.0, {"speed_rpm": math.nan}).mode == "idle"
    assert modes.gate(MACHINE, state, 5.0, running).mode == DEFAULT_MODE
    assert modes.gate(MACHINE, state, 6.0, {"temp_c": 30.0}).mode == DEFAULT_MODE  # and running
    assert modes.silence_expected(state, 7.0) is False
    modes.gate(MACHINE, state, 8.0, stopped)
    assert modes.silence_expected(state, 9.0) is True  # a stopped machine may fall silent
    # A declared window is more specific than a signal: a maintenance wins over the rule.
    modes.schedule(state, MACHINE, MAINTENANCE, 10.0, 20.0)
    assert modes.gate(MACHINE, state, 11.0, stopped).mode == MAINTENANCE
    # Other machines, and the other bound.
    assert modes.gate("lathe-02", MachineState(), 1.0, stopped).mode == DEFAULT_MODE
    hot = Modes(learning={"idle": "pause"}, rules=[ModeRule("*", "door", MAINTENANCE, above=0.5)])
    assert hot.gate(MACHINE, MachineState(), 1.0, {"door": 1.0}).mode == MAINTENANCE
    with pytest.raises(ValueError, match="exactly one"):
        ModeRule("*", "speed_rpm", "idle")
    with pytest.raises(ValueError, match="rule mode"):
        Modes(rules=[ModeRule("*", "speed_rpm", "nap", below=1.0)])
    config = load_config(environ={}, overrides={"modes.rules": [{"sensor": "speed_rpm", "below": 50}]})
    assert Modes.from_config(config.modes).rules.rules == (ModeRule("*", "speed_rpm", "idle", below=50.0),)
    for bad, where in (({"sensor": "s"}, "below"), ({"sensor": "s", "below": 1, "above": 2}, "below"),
                       ({"sensor": "s", "below": 1, "mode": "nap"}, "mode")):
        with pytest.raises(ConfigError, match=rf"modes\.rules\[0\]\.{where}"):
            load_config(environ={}, overrides={"modes.rules": [bad]})


def test_a_stop_read_off_the_current_is_handled_like_a_declared_one() -> None:
    # No window for the stop: the rule finds it. Without settling, the cold restart pages as
    # with a declared stop; with it, nothing; a machine that restarts broken still pages once
    # its settling readings are over.
    assert [alert_index(a) for a in _restart(settle=0, by_rule=True)] == [1800]
    assert _restart(settle=60, by_rule=True) == []
    broken = _restart(settle=60, fault=True, by_rule=True)
    assert [alert_index(a) for a in broken] == [1860]
    assert broken[0]["sensors"][0]["name"] == "current_a"
