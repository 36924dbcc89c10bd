"""Simulator faults that keep every sensor in range and only break its relation to the load."""

from __future__ import annotations

import numpy as np
import pytest
from anomstream.stream.simulator import (
    FAULT_KINDS,
    RELATION_FAULT_KINDS,
    SENSORS,
    FaultSpec,
    Simulator,
)

START, DURATION, STEPS = 800, 400, 1600
WINDOW = slice(START, START + DURATION)
CURRENT, VIB = SENSORS.index("current_a"), SENSORS.index("vib_rms")


def _series(sim: Simulator, steps: int = STEPS) -> np.ndarray:
    table = np.empty((sim.machines, steps, len(SENSORS)))
    for r in sim.readings(steps * sim.machines):
        table[sim.machine_ids.index(r.machine_id), r.index] = list(r.record["sensors"].values())
    return table


def _clean_and_faulty(kind: str, magnitude: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Machine 1 of the same seed without and with one fault on its current."""
    spec = FaultSpec(machine=1, sensor="current_a", kind=kind, start_index=START,
                     duration=DURATION, magnitude=magnitude)  # fmt: skip
    clean = _series(Simulator(machines=3, seed=7, start_time=0.0, faults=[]))
    return clean[1], _series(Simulator(machines=3, seed=7, start_time=0.0, faults=[spec]))[1]


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(x, y, 1)[0])


@pytest.mark.parametrize("kind", RELATION_FAULT_KINDS)
def test_relation_fault_keeps_the_sensor_in_its_normal_range(kind: str) -> None:
    clean, faulty = _clean_and_faulty(kind)
    noise = np.std(np.diff(clean[:, CURRENT])) / np.sqrt(2)
    lo, hi = clean[:, CURRENT].min(), clean[:, CURRENT].max()
    assert lo - 3 * noise <= faulty[WINDOW, CURRENT].min()
    assert faulty[WINDOW, CURRENT].max() <= hi + 3 * noise
    # Only the faulty sensor, only inside the window (current has no thermal lag).
    changed = np.argwhere(clean != faulty)
    assert set(changed[:, 1]) == {CURRENT}
    assert START <= changed[:, 0].min() and changed[:, 0].max() < START + DURATION


def test_decouple_makes_the_current_follow_another_load() -> None:
    clean, faulty = _clean_and_faulty("decouple", magnitude=0.5)
    before = np.corrcoef(clean[WINDOW, CURRENT], clean[WINDOW, VIB])[0, 1]
    during = np.corrcoef(faulty[WINDOW, CURRENT], faulty[WINDOW, VIB])[0, 1]
    assert before > 0.95 and during < -0.5  # half a period out of phase: loaded while idle
    # Same values, other times: the marginal distribution hardly moves.
    assert abs(faulty[WINDOW, CURRENT].mean() - clean[WINDOW, CURRENT].mean()) < 0.15 * np.ptp(
        clean[:, CURRENT]
    )


def test_relation_drift_fades_the_gain_to_the_load() -> None:
    clean, faulty = _clean_and_faulty("relation_drift", magnitude=0.8)
    early, late = slice(START, START + 40), slice(START + DURATION - 80, START + DURATION)
    normal = _slope(clean[WINDOW, VIB], clean[WINDOW, CURRENT])
    assert _slope(faulty[early, VIB], faulty[early, CURRENT]) == pytest.approx(normal, rel=0.2)
    # 80 % of the gain lost at the end, ~76 % on average over the last 80 readings.
    assert _slope(faulty[late, VIB], faulty[late, CURRENT]) < 0.4 * normal


def test_random_relation_faults_only_when_asked() -> None:
    sim = Simulator(machines=3, seed=7, start_time=0.0, fault_rate=5,
                    fault_kinds=RELATION_FAULT_KINDS)  # fmt: skip
    list(sim.readings(3 * 6000))
    assert {f.kind for f in sim.faults} == set(RELATION_FAULT_KINDS)
    for f in sim.faults:
        assert 0 < f.magnitude <= 1 and f.sensor in SENSORS and f.start_index >= 300
    default = Simulator(machines=3, seed=7, start_time=0.0, fault_rate=5)
    list(default.readings(3 * 6000))
    assert {f.kind for f in default.faults} <= set(FAULT_KINDS)


@pytest.mark.parametrize(
    ("kind", "magnitude"), [("decouple", 0.0), ("decouple", 1.0), ("relation_drift", 1.5)]
)
def test_relation_fault_magnitude_is_checked(kind: str, magnitude: float) -> None:
    spec = FaultSpec(machine=0, sensor="current_a", kind=kind, start_index=0, duration=5,
                     magnitude=magnitude)  # fmt: skip
    with pytest.raises(ValueError, match=kind):
        Simulator(machines=1, faults=[spec])


def test_unknown_random_fault_kind_is_an_error() -> None:
    with pytest.raises(ValueError, match="fault_kinds"):
        Simulator(fault_kinds=("melt",))
