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
