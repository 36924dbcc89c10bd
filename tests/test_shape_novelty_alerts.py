"""The default detector and the alert policy in their roles: the detector scores tails (records,
deflated echoes, persistence), the policy alone fires, holds and resolves, from config."""

from __future__ import annotations

import math
import pickle
import random
from dataclasses import fields

import pytest

from anomstream.detectors.alert_hold import AlertHold
from anomstream.detectors.policy import AlertPolicy, PolicyState
from anomstream.detectors.record_gate import RecordGate
from anomstream.detectors.shape_novelty import ShapeNovelty
from anomstream.stream.config import load_config
from anomstream.stream.config_sections import AlertsConfig

PERIOD = 288  # a load cycle of a day of 5-minute readings


def test_policy_defaults_are_the_config_defaults_and_the_shipped_toml() -> None:
    shipped = load_config(environ={}, overrides={"state.enabled": False}).alerts
    names = [f.name for f in fields(AlertPolicy)]
    assert {n: getattr(AlertsConfig(), n) for n in names} == {n: getattr(AlertPolicy(), n) for n in names}
    assert AlertPolicy.from_config(shipped) == AlertPolicy()  # config/anomstream.toml's [alerts]


@pytest.mark.parametrize("z", [0.0, 1.0, 2.0, 3.9, 6.0])
def test_persistence_is_the_two_sided_normal_tail_of_the_recent_deviation(z: float) -> None:
    hold = AlertHold()
    rng = random.Random(1)
    for _ in range(20_000):
        hold.update(rng.gauss(10.0, 2.0))
    recent = hold.mean + z * math.sqrt(hold.var)
    assert hold.tail(recent) == pytest.approx(math.erfc(z / math.sqrt(2.0)), rel=1e-9)


def test_old_checkpoints_of_the_baseline_and_the_record_gate_restore() -> None:
    hold = AlertHold.__new__(AlertHold)
    hold.__setstate__((1234, 5.0, 700, 4.0))  # (keep_until, mean, seen, var): the keep window goes
    assert (hold.mean, hold.seen, hold.var) == (5.0, 700, 4.0)
    gate = RecordGate.__new__(RecordGate)
    gate.__setstate__(([3.0, 9.0], 2.0, 40, 90.0, 120))  # an escalated bar: dropped
    assert gate.bar() == 9.0
    assert pickle.loads(pickle.dumps(gate)).bar() == 9.0


def _cycle(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [50 + 10 * math.sin(2 * math.pi * i / PERIOD) + rng.gauss(0, 1.0) for i in range(n)]


def _alerts(values: list[float], warmup: int = 150) -> list[tuple[int, str]]:
    model, policy, state = ShapeNovelty(), AlertPolicy(), PolicyState()
    out = []
    for i, v in enumerate(values):
        x = {"value": v}
        score = model.score_learn_one(x) if i >= warmup else (model.learn_one(x) or 0.0)
        t = policy.step(state, score, float(i), {"value": score})
        if t is not None:
            out.append((i, t.status))
    return out


def test_a_level_shift_alerts_while_it_lasts_and_resolves_soon_after_it_ends() -> None:
    values = _cycle(3000, seed=0)
    onset, end = 2000, 2120  # 2.5 cycle amplitudes, 120 readings: the simulator's longest shift
    for i in range(onset, end):
        values[i] += 25.0
    fired = [(i, s) for i, s in _alerts(values) if i >= onset]
    assert [s for _, s in fired[:2]] == ["firing", "resolved"]
    (first, _), (resolved, _) = fired[:2]
    assert onset <= first <= onset + 5
    # held open by the persistence score while the shift lasts; resolved within ~one picture
    # (72 readings) and the policy's clear_run after it ends
    assert end <= resolved <= end + 72 + AlertPolicy().clear_run


def test_a_long_clean_cyclic_run_is_almost_never_inside_an_alert() -> None:
    values = _cycle(12_000, seed=1)
    events = _alerts(values)
    inside, opened = 0, None
    for i, status in events:
        if status == "firing":
            opened = i
        elif opened is not None:
            inside, opened = inside + i - opened, None
    if opened is not None:
        inside += len(values) - opened
    assert inside < 0.02 * len(values)
