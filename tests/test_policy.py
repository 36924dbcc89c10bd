from __future__ import annotations

import math

import pytest

from anomstream.detectors.policy import COOLDOWN, FIRING, NORMAL, AlertPolicy, PolicyState


def _run(policy: AlertPolicy, scores: list[float]) -> list[tuple[int, str]]:
    state = PolicyState()
    events = []
    for i, score in enumerate(scores):
        transition = policy.step(state, score, float(i), {"temp": score})
        if transition:
            events.append((i, transition.status))
    return events


POLICY = AlertPolicy(threshold=0.99, critical_threshold=0.9999, min_run=3, clear_threshold=0.9, clear_run=4, cooldown=5)


def test_one_fault_one_firing_one_resolved_despite_flapping() -> None:
    fault = [0.999, 0.995, 0.999, 0.95, 0.999, 0.92, 0.999, 0.999]  # dips stay above clear_threshold
    scores = [0.1] * 10 + fault + [0.2] * 10
    assert _run(POLICY, scores) == [(12, "firing"), (21, "resolved")]


def test_short_blips_do_not_fire() -> None:
    scores = [0.1, 0.999, 0.999, 0.1, 0.999, 0.1, 0.999, 0.999, 0.5] * 5
    assert _run(POLICY, scores) == []


def test_cooldown_swallows_the_tail_then_rearms() -> None:
    scores = [0.999] * 3 + [0.1] * 4 + [0.999] * 3 + [0.1] * 3 + [0.999] * 3
    # fires at 2, resolves at 6, cooldown 7..11 ignores the second burst, third burst fires at 15
    assert _run(POLICY, scores) == [(2, "firing"), (6, "resolved"), (15, "firing")]


def test_severity_start_time_and_sensors() -> None:
    state = PolicyState()
    step = POLICY.step
    assert step(state, 0.995, 100.0, {"temp": 0.995, "vib": 0.5}) is None
    assert step(state, 0.99995, 101.0, {"temp": 0.99, "vib": 0.99995}) is None
    firing = step(state, 0.999, 102.0, {"temp": 0.999, "vib": 0.2})
    assert firing is not None and state.phase == FIRING
    assert firing.severity == "critical" and firing.started_at == 100.0
    assert dict(firing.sensor_scores) == {"temp": 0.999, "vib": 0.99995}
    # evidence = summed surprise -log10(1 - score) of the readings at or above the threshold:
    # temp 0.995 + 0.99 + 0.999 -> 2.30 + 2 + 3; vib 0.99995 -> 4.30
    temp, vib = 2 + math.log10(2) + 2 + 3, 5 - math.log10(5)
    assert dict(firing.sensors) == pytest.approx({"temp": temp / (temp + vib), "vib": vib / (temp + vib)})
    assert list(firing.sensors) == ["temp", "vib"]  # largest share first
    for t in range(4):
        resolved = step(state, 0.1, 103.0 + t, {"temp": 0.1})
    assert resolved is not None and resolved.status == "resolved"
    assert (resolved.started_at, resolved.severity, dict(resolved.sensors)) == (100.0, "critical", dict(firing.sensors))
    assert dict(resolved.sensor_scores) == dict(firing.sensor_scores)
    assert state.phase == COOLDOWN


def test_zero_cooldown_returns_to_normal() -> None:
    policy = AlertPolicy(threshold=0.99, min_run=1, clear_threshold=0.9, clear_run=1, cooldown=0)
    state = PolicyState()
    assert policy.step(state, 0.999, 0.0, {}).status == "firing"
    assert policy.step(state, 0.1, 1.0, {}).status == "resolved"
    assert state.phase == NORMAL


# -- what holds a firing alert: its own sensors' evidence ------------------------------------------
HOLD = AlertPolicy(threshold=0.99, min_run=2, clear_threshold=0.9, clear_run=3, cooldown=0)


def _fire_on_temp(policy: AlertPolicy = HOLD) -> PolicyState:
    state = PolicyState()
    policy.step(state, 0.999, 0.0, {"temp": 0.999, "vib": 0.1})
    assert policy.step(state, 0.999, 1.0, {"temp": 0.999, "vib": 0.1}).status == "firing"
    return state


def test_an_unrelated_sensors_unusual_readings_do_not_hold_the_alert() -> None:
    # vib bounces above clear_threshold (below threshold) after temp's fault ends: on a machine
    # with many sensors such readings come every few readings, and would hold the alert forever
    state = _fire_on_temp()
    events = [HOLD.step(state, 0.95, 2.0 + t, {"temp": 0.1, "vib": 0.95}) for t in range(3)]
    assert [e and e.status for e in events] == [None, None, "resolved"]
    assert dict(events[-1].sensors) == {"temp": 1.0}


def test_a_sensor_reaching_the_threshold_while_firing_holds_the_alert() -> None:
    state = _fire_on_temp()
    assert HOLD.step(state, 0.995, 2.0, {"temp": 0.1, "vib": 0.995}) is None  # vib joins
    events = [HOLD.step(state, 0.95, 3.0 + t, {"temp": 0.1, "vib": 0.95}) for t in range(5)]
    assert all(e is None for e in events)  # vib's evidence holds it now
    events = [HOLD.step(state, 0.1, 8.0 + t, {"temp": 0.1, "vib": 0.1}) for t in range(3)]
    resolved = events[-1]
    assert resolved is not None and resolved.status == "resolved"
    assert dict(resolved.sensors) == {"temp": 1.0}  # the documents keep the sensors it fired with


def test_the_machine_model_holds_an_alert_it_implicates() -> None:
    state = _fire_on_temp()
    holds = (0.96, {"temp": 0.7, "vib": 0.3})  # 0.92 as one of two tails: above 0.9
    elsewhere = (0.96, {"vib": 0.995, "temp": 0.005})  # temp below MIN_SHARE
    for t in range(5):
        assert HOLD.step(state, 0.96, 2.0 + t, {"temp": 0.1, "vib": 0.1}, holds) is None
    events = [HOLD.step(state, 0.96, 7.0 + t, {"temp": 0.1, "vib": 0.1}, elsewhere) for t in range(3)]
    assert events[-1] is not None and events[-1].status == "resolved"


def test_two_kinds_of_model_holding_count_as_two_chances() -> None:
    # Per-sensor models and the machine model each reach `clear_threshold` by chance on their
    # own share of clean readings; together they hold at the level of one tail (Bonferroni):
    # a score exactly at the clear threshold no longer holds when both could.
    both = _fire_on_temp()
    at_clear = (0.9, {"temp": 0.7, "vib": 0.3})
    events = [HOLD.step(both, 0.9, 2.0 + t, {"temp": 0.9, "vib": 0.1}, at_clear) for t in range(3)]
    assert events[-1] is not None and events[-1].status == "resolved"
    # with one kind of model only (no machine model), the same score holds, as before
    alone = _fire_on_temp()
    assert [HOLD.step(alone, 0.9, 2.0 + t, {"temp": 0.9, "vib": 0.1}) for t in range(5)] == [None] * 5
    # and twice as far into the tail holds with both
    held = _fire_on_temp()
    strong = (0.95, {"temp": 0.7, "vib": 0.3})
    assert [HOLD.step(held, 0.95, 2.0 + t, {"temp": 0.95, "vib": 0.1}, strong) for t in range(5)] == [None] * 5


def test_an_alert_with_no_sensors_is_held_by_the_machine_score() -> None:
    state = PolicyState()
    HOLD.step(state, 0.999, 0.0, {})
    assert HOLD.step(state, 0.999, 1.0, {}).status == "firing"
    assert [HOLD.step(state, 0.95, 2.0 + t, {}) for t in range(5)] == [None] * 5


def test_state_from_before_holding_holds_by_the_fired_sensors() -> None:
    state = _fire_on_temp()
    old = state.__getstate__()[:7]  # as a checkpoint written before `holding` existed
    restored = PolicyState.__new__(PolicyState)
    restored.__setstate__(old)
    assert restored.phase == FIRING and restored.holding == ["temp"]
    events = [HOLD.step(restored, 0.95, 2.0 + t, {"temp": 0.1, "vib": 0.95}) for t in range(3)]
    assert events[-1] is not None and events[-1].status == "resolved"


# -- one reading alone: the machine model's second opinion ----------------------------------------
INSTANT = AlertPolicy(threshold=0.99, instant_threshold=0.99999, min_run=2, clear_threshold=0.9, clear_run=3)


@pytest.mark.parametrize(
    ("joint", "fires"),
    [
        (None, True),  # no machine model
        ((0.0, {}), True),  # it did not score the reading (warm-up, one sensor): abstains
        ((0.995, {"temp": 0.9, "vib": 0.1}), True),  # it confirms
        ((0.99, {"temp": 0.9, "vib": 0.1}), True),  # unusual to it, if not anomalous: enough
        ((0.96, {"temp": 0.5, "vib": 0.5}), False),  # not unusual enough to it
    ],
)
def test_a_lone_extreme_reading_fires_at_once_only_if_the_machine_model_confirms_it(joint, fires) -> None:
    state = PolicyState()
    first = INSTANT.step(state, 0.999999, 0.0, {"temp": 0.999999, "vib": 0.1}, joint)
    assert (first is not None and first.status == "firing") is fires
    if not fires:  # the reading still counts towards `min_run`
        second = INSTANT.step(state, 0.995, 1.0, {"temp": 0.995, "vib": 0.1}, joint)
        assert second is not None and second.status == "firing"
