"""Sensor-health codes, pure logic: each code on a hand-made broken sensor, clean simulated
sensors, precedence, the excluded set, config errors, checkpoints."""

from __future__ import annotations

import pickle
import random
from collections.abc import Iterable, Mapping

import orjson
import pytest
from fakes import FakeClock, FakeRecord, validate_alert

from anomstream.detectors.entities import MachineState
from anomstream.detectors.health_codes import Limits, Rules
from anomstream.detectors.policy import Transition
from anomstream.detectors.sensor_health import LimitRule, SensorHealth
from anomstream.stream.config import load_config
from anomstream.stream.errors import ConfigError
from anomstream.stream.metrics import Metrics
from anomstream.stream.pipeline import Pipeline
from anomstream.stream.simulator import Simulator

T0 = 1_800_000_000.0
Event = tuple[int, Transition]  # (reading index, transition)


def noisy(count: int, seed: int = 1, centre: float = 50.0, spread: float = 5.0) -> list[float]:
    """A live sensor: 3 decimals of noise, so it (almost) never repeats a value."""
    rng = random.Random(seed)
    return [round(centre + rng.uniform(-spread, spread), 3) for _ in range(count)]


def run(
    health: SensorHealth, readings: Iterable[Mapping[str, float]], state: MachineState | None = None,
    machine: str = "press-01", start: int = 0,
) -> tuple[list[Event], list[frozenset[str]], MachineState]:
    """Step every reading (one a second from T0 + start); the transitions with their index."""
    state = state if state is not None else MachineState()
    events: list[Event] = []
    excluded: list[frozenset[str]] = []
    for i, sensors in enumerate(readings, start):
        out, ex = health.step(state, sensors, T0 + i, machine)
        events += [(i, t) for t in out]
        excluded.append(ex)
    return events, excluded, state


def summary(events: list[Event]) -> list[tuple[int, str, str, str]]:
    return [(i, t.kind, t.status, next(iter(t.sensors))) for i, t in events]


def check_shape(t: Transition, sensor: str) -> None:
    assert dict(t.sensors) == {sensor: 1.0} and dict(t.sensor_scores) == {sensor: 1.0}
    assert t.score == 1.0 and t.detail


def test_stuck_fires_after_the_bound_resolves_when_the_value_moves_and_is_excluded() -> None:
    values = noisy(300) + [51.25] * 200 + noisy(10, seed=2)  # inside its range: not railed
    events, excluded, _ = run(SensorHealth(), ({"p": v} for v in values))
    assert summary(events) == [(300 + 150 - 1, "stuck", "firing", "p"), (500, "stuck", "resolved", "p")]
    firing, resolved = events[0][1], events[1][1]
    check_shape(firing, "p")
    assert firing.started_at == resolved.started_at == T0 + 300  # the first reading of the run
    assert firing.severity == resolved.severity == "warning"
    assert "stuck at 51.25 for 150 readings" in firing.detail
    assert all(excluded[i] == {"p"} for i in range(449, 500))
    assert not any(excluded[i] for i in range(449)) and not excluded[500]


def test_stuck_bound_grows_with_the_sensors_own_longest_normal_run() -> None:
    # A coarse sensor that normally holds each value for up to 60 readings, also at its
    # extremes: stuck (and railed) only after 3 x 60 = 180 identical readings.
    coarse = [float(v) for v in range(5) for _ in range(60)]
    events, _, state = run(SensorHealth(), ({"q": v} for v in coarse + [1.0]))
    assert events == [] and state.ops["health"]["sensors"]["q"]["longest"] == 60
    more, _, _ = run(SensorHealth(), ({"q": v} for v in [2.5] * 200), state, start=301)
    assert summary(more) == [(301 + 179, "stuck", "firing", "q")]


def test_no_stuck_before_the_minimum_history() -> None:
    events, _, _ = run(SensorHealth(), ({"p": v} for v in noisy(50) + [42.0] * 400))
    assert events == []


def test_flatline_from_the_first_reading_and_its_end() -> None:
    readings = [{"dead": 0.0, "live": v} for v in noisy(150)] + [{"dead": 3.2, "live": 50.0}]
    events, excluded, _ = run(SensorHealth(), readings)
    assert summary(events) == [(99, "flatline", "firing", "dead"), (150, "flatline", "resolved", "dead")]
    assert events[0][1].started_at == events[1][1].started_at == T0
    assert excluded[98] == set() and excluded[99] == excluded[149] == {"dead"} and not excluded[150]


def test_railed_at_the_learned_maximum_wins_over_stuck() -> None:
    values = noisy(300) + [99.0] * 400 + [50.0]  # pinned above all it ever read: its new maximum
    events, excluded, _ = run(SensorHealth(), ({"p": v} for v in values))
    assert summary(events) == [(329, "railed", "firing", "p"), (700, "railed", "resolved", "p")]
    assert events[0][1].started_at == T0 + 300
    assert "maximum 99.0" in events[0][1].detail
    assert all(excluded[i] == {"p"} for i in range(329, 700))


def idle_cycles(cycles: int, idle: float = 0.0, rest: int = 70, seed: int = 1) -> list[float]:
    """A machine's current: loaded with noise, then resting at exactly `idle` (its floor, the
    lowest value it reads) for `rest` readings, every cycle."""
    return [v for c in range(cycles) for v in noisy(200, seed=seed + c) + [idle] * rest]


def test_a_floor_the_machine_rests_at_every_cycle_is_railed_twice_then_its_habit() -> None:
    events, excluded, state = run(SensorHealth(), ({"current": v} for v in idle_cycles(12)))
    # The first two floors raise `railed` (no one can tell a floor from a rail yet); once the
    # second has ended, it is the habit: none of the next ten cycles raises anything.
    assert summary(events) == [
        (200 + 29, "railed", "firing", "current"), (270, "railed", "resolved", "current"),
        (270 + 200 + 29, "railed", "firing", "current"), (540, "railed", "resolved", "current"),
    ]
    s = state.ops["health"]["sensors"]["current"]
    assert s["longest"] == 70 and s["coded"] == [0.0, 70]
    assert not any(excluded[540:])  # the floor's readings teach the models again
    # The last floor goes on for good (the machine stopped): still `railed`, once the run is
    # 3 x its habit long (70 of the run were the last cycle's).
    more, _, _ = run(SensorHealth(), ({"current": 0.0} for _ in range(300)), state, start=3240)
    assert summary(more) == [(3240 + 3 * 70 - 70 - 1, "railed", "firing", "current")]


def test_coded_runs_at_different_values_and_configured_rails_teach_nothing() -> None:
    # A transmitter that freezes three times, each time at another value: stuck every time.
    values = noisy(300) + [51.25] * 160 + noisy(300, seed=2) + [48.5] * 160 + noisy(300, seed=3) + [51.5] * 160
    events, _, state = run(SensorHealth(), ({"p": v} for v in values))
    assert [(k, st) for _, k, st, _ in summary(events)] == [("stuck", "firing"), ("stuck", "resolved")] * 2 + [
        ("stuck", "firing")]
    assert state.ops["health"]["sensors"]["p"]["longest"] < 10
    # A configured rail fires every time the sensor is pinned there, habit or not.
    health = SensorHealth(limits=[LimitRule("*", "current", Limits(rail_low=0.0))])
    events, _, _ = run(health, ({"current": v} for v in idle_cycles(6)))
    assert [k for _, k, st, _ in summary(events) if st == "firing"] == ["railed"] * 6


def test_railed_at_a_configured_rail_needs_no_history() -> None:
    health = SensorHealth(limits=[LimitRule("*", "p*", Limits(rail_low=4.0))])
    events, _, _ = run(health, ({"p": v} for v in [10.0, 11.0] + [3.5] * 40 + [12.0]))
    assert summary(events) == [(31, "railed", "firing", "p"), (42, "railed", "resolved", "p")]
    assert "minimum 3.5" in events[0][1].detail


def test_gap_counts_the_machines_readings_without_the_sensor() -> None:
    full = [{"a": a, "b": b} for a, b in zip(noisy(100), noisy(100, seed=3), strict=True)]
    only_a = [{"a": v} for v in noisy(40, seed=4)]
    events, excluded, _ = run(SensorHealth(), full + only_a + full[:2])
    assert summary(events) == [(129, "gap", "firing", "b"), (140, "gap", "resolved", "b")]
    gap = events[0][1]
    check_shape(gap, "b")
    assert gap.started_at == events[1][1].started_at == T0 + 100  # the first reading without it
    assert not any(excluded)  # nothing to exclude: the sensor has no value


def test_no_gap_for_a_sensor_seen_too_rarely_to_be_expected() -> None:
    readings = [{"a": 1.0 + i, "b": 2.0} for i in range(5)] + [{"a": float(i)} for i in range(100)]
    assert run(SensorHealth(), readings)[0] == []


def test_out_of_range_per_pattern_first_match_wins_and_is_not_excluded() -> None:
    health = SensorHealth(limits=[
        LimitRule("press-*", "temp*", Limits(high=80.0)),
        LimitRule("*", "temp*", Limits(high=10.0)),  # shadowed for presses
        LimitRule("*", "p*", Limits(low=0.0, high=60.0)),
    ])
    values = [50.0, 85.0, 50.0, 85.0, 86.0, 87.0, 79.0, 90.0, 70.0, 71.0]  # a glitch, then 3 out
    events, excluded, _ = run(health, ({"temp": v} for v in values))
    assert summary(events) == [(4, "out_of_range", "firing", "temp"), (9, "out_of_range", "resolved", "temp")]
    firing = events[0][1]
    assert firing.started_at == T0 + 3 and firing.severity == "critical"
    assert "86.0 above the limit max = 80.0" in firing.detail
    assert not any(excluded)  # real process values: they keep teaching the models
    assert run(health, ({"temp": v} for v in values), machine="lathe-02")[0][0][1].kind == "out_of_range"
    events, _, _ = run(health, ({"pressure": v} for v in [1.0, -1.0, -2.0]))
    assert summary(events) == [(2, "out_of_range", "firing", "pressure")]
    assert "below the limit min = 0.0" in events[0][1].detail


def test_clean_simulated_machines_raise_no_health_code() -> None:
    sim = Simulator(machines=5, seed=4, fault_rate=0, start_time=T0)
    health = SensorHealth()
    states: dict[str, MachineState] = {}
    count = 0
    for r in sim.readings(50_000):
        out, excluded = health.step(states.setdefault(r.machine_id, MachineState()), r.record["sensors"], r.ts,
                                    r.machine_id)
        assert not out and not excluded, (r, out)
        count += 1
    assert count == 50_000


def test_state_survives_a_checkpoint_and_old_state_has_none() -> None:
    health = SensorHealth()
    events, _, state = run(health, ({"p": v} for v in noisy(300) + [51.25] * 160))
    assert summary(events) == [(449, "stuck", "firing", "p")]
    restored = pickle.loads(pickle.dumps(state))
    assert restored.ops["health"] == state.ops["health"]
    events, excluded, _ = run(SensorHealth(), [{"p": 51.25}, {"p": 50.0}], restored, start=460)
    assert summary(events) == [(461, "stuck", "resolved", "p")]
    assert events[0][1].started_at == T0 + 300 and excluded[0] == {"p"}
    # A checkpoint from before the operations features: no `ops` at all.
    old = MachineState()
    old.__setstate__(({}, old.policy, 10, "telemetry", 9, 0, None))
    assert old.ops == {}
    assert run(health, [{"p": 1.0}], old)[0] == [] and old.ops["health"]["v"] == 1
    # Sensor state from before `coded` existed: a coded run ending there starts the record.
    del_coded = pickle.loads(pickle.dumps(state))
    s = del_coded.ops["health"]["sensors"]["p"]
    assert "coded" not in s  # the stuck run above is still open
    run(health, [{"p": 50.0}], del_coded, start=470)
    assert s["coded"] == [51.25, 160] and s["longest"] < 10


def test_resolve_all_ends_every_code_and_a_broken_sensor_fires_anew_later() -> None:
    health = SensorHealth(limits=[LimitRule("*", "t", Limits(high=10.0))])
    readings = [{"dead": 0.0, "t": 20.0 + i % 7} for i in range(100)]
    events, _, state = run(health, readings)
    assert {(t.kind, t.status) for _, t in events} == {("flatline", "firing"), ("out_of_range", "firing")}
    resolved = health.resolve_all(state)
    assert sorted((t.kind, t.status, t.started_at) for t in resolved) == [
        ("flatline", "resolved", T0), ("out_of_range", "resolved", T0)]
    assert health.resolve_all(state) == []
    again, _, _ = run(health, readings, state, start=200)
    assert sorted((i, t.kind, t.started_at) for i, t in again) == [
        (201, "out_of_range", T0 + 200), (299, "flatline", T0 + 200)]


def test_forget_resolves_and_relearns_the_named_sensors() -> None:
    health = SensorHealth()
    full = [{"a": a, "b": b} for a, b in zip(noisy(100), noisy(100, seed=3), strict=True)]
    events, _, state = run(health, full + [{"a": 1.0}] * 40)
    assert summary(events) == [(129, "gap", "firing", "b")]
    resolved = health.forget(state, ["b", "unknown"])
    assert [(t.kind, t.status, t.started_at) for t in resolved] == [("gap", "resolved", T0 + 100)]
    assert set(state.ops["health"]["sensors"]) == {"a"}
    assert run(health, [{"a": 1.0}] * 40, state, start=140)[0] == []
    assert health.forget(state) == [] and state.ops["health"]["sensors"] == {}


def test_an_open_out_of_range_resolves_once_its_limits_are_gone() -> None:
    limited = SensorHealth(limits=[LimitRule("*", "t", Limits(high=10.0))])
    events, _, state = run(limited, [{"t": 20.0 + i} for i in range(3)])
    assert summary(events) == [(1, "out_of_range", "firing", "t")]
    events, _, _ = run(SensorHealth(), [{"t": 30.0 + i} for i in range(2)], state, start=3)
    assert summary(events) == [(4, "out_of_range", "resolved", "t")]


def test_describe_and_per_kind_severity_and_disabled() -> None:
    health = SensorHealth(rules=Rules(flatline_run=3), severity={"flatline": "critical"})
    events, _, state = run(health, [{"a": 1.0}] * 3)
    assert events[0][1].severity == "critical"
    described = health.describe(state)
    assert described["a"]["open"]["flatline"]["started_at"] == T0
    assert described["a"] | {"open": {}} == {"open": {}, "readings": 3, "value": 1.0, "run": 3,
                                             "longest_run": 0, "min": 1.0, "max": 1.0, "missing": 0}
    orjson.dumps(described)
    assert run(SensorHealth(enabled=False), [{"a": 1.0}] * 200)[0] == []
    with pytest.raises(ValueError, match="unknown health kinds"):
        SensorHealth(severity={"melted": "critical"})
    with pytest.raises(ValueError, match="severity must be 'warning' or 'critical'"):
        SensorHealth(severity={"gap": "page"})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"health.limits": [{"sensor": "t", "min": 5.0, "max": 5.0}]}, "health.limits[0].max': must be above min"),
        ({"health.limits": [{"rail_min": 9, "rail_max": 1}]}, "rail_max': must be above rail_min"),
        ({"health.limits": [{"sensor": "t"}]}, "needs at least one of min, max, rail_min, rail_max"),
        ({"health.limits": [{"sensor": "t", "max": "90"}]}, "health.limits[0].max"),
        ({"health.gap_run": 0}, "health.gap_run': must be > 0"),
        ({"health.stuck_factor": 0.0}, "health.stuck_factor"),
        ({"health.severity": {"stuck": "page"}}, "health.severity.stuck"),
        ({"health.limits": [{"max": 1.0, "maximum": 2.0}]}, "maximum"),
    ],
)
def test_config_errors_name_the_key(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=_literal(message)):
        load_config(environ={}, overrides=overrides)


def _literal(text: str) -> str:
    import re

    return re.escape(text)


def test_rules_and_limits_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="railed_run must be a positive number"):
        Rules(railed_run=0)
    with pytest.raises(ValueError, match="stuck_factor must be > 0"):
        Rules(stuck_factor=0.0)
    with pytest.raises(ValueError, match=r"low \(3.0\) must be below high \(1.0\)"):
        Limits(low=3.0, high=1.0)


def test_config_reaches_the_health_tracker() -> None:
    config = load_config(environ={}, overrides={
        "health.flatline_run": 7, "health.severity": {"gap": "critical"},
        "health.limits": [{"machine": "press-*", "sensor": "temp_c", "max": 90, "rail_max": 150.0}],
    })
    health = SensorHealth.from_config(config.health)
    assert health.rules.flatline_run == 7 and health.severity["gap"] == "critical"
    assert health.limits_for("press-01", "temp_c") == Limits(high=90.0, rail_high=150.0)
    assert health.limits_for("lathe-02", "temp_c") == Limits()


def test_in_the_pipeline_a_stuck_sensors_values_stop_teaching_its_model() -> None:
    config = load_config(environ={}, overrides={
        "health.flatline_run": 20, "detector.warmup": 10, "state.enabled": False})
    pipeline = Pipeline(config, metrics=Metrics(), clock=FakeClock(T0 + 1000))
    live = noisy(60)
    records = [
        FakeRecord("telemetry", 0, i, int((T0 + i) * 1000), b"m1", orjson.dumps(
            {"machine_id": "m1", "ts": T0 + i, "sensors": {"dead": 4.0, "live": live[i]}}))
        for i in range(60)
    ]
    out = pipeline.process(records)
    alerts = [validate_alert(m.value) for m in out.alerts if m.topic == config.kafka.alert_topic]
    flatline = [a for a in alerts if a["kind"] == "flatline"]
    assert len(flatline) == 1 and flatline[0]["sensors"][0]["name"] == "dead"
    assert flatline[0]["detector"]["name"] == "sensor_health" and flatline[0]["status"] == "firing"
    state = pipeline.models.find("m1")
    assert state is not None
    assert state.entities["dead"].learned == 19  # the 20th reading raised the code: excluded since
    assert state.entities["live"].learned == 60
