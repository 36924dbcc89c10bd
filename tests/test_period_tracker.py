"""`PeriodTracker`: the research version's numbers on NAB, a synthetic cycle, purity, pickling."""

from __future__ import annotations

import math
import pickle
import random
from collections.abc import Iterable
from pathlib import Path

import pytest

from anomstream.detectors.period_tracker import PeriodTracker
from anomstream.evaluation.nab_corpus import read_series

NAB = Path(__file__).resolve().parents[2] / "shared/datasets/nab"

# Checksums of the research prototype's `z, strength = tracker.update(v)` over whole NAB files,
# with the configuration the tracker's defaults reproduce (b=4, K=256, every=64, tol=1,
# ratio=0.95, prom=0.3, alpha=0.005, nper=1, rank="asinh"). The prototype is not part of the
# repository; its full (z, strength) sequences were checked equal, float for float, on all 58
# NAB files when these were taken. Per file: sum of z, max z, readings with z > 10, sum of
# strength, the cycle term ShapeNovelty adds (sum of 10 * (z - 10) where strength > 0.7 and
# z > 10), and the final period and strength.
# fmt: off
GOLDEN = [
    ("artificialWithAnomaly/art_daily_nojump.csv", 1381.1008018330242, 20.648197791307677, 14,
     2706.8160801809418, 512.9368779052718, 72, 0.5694596313521892),
    ("artificialWithAnomaly/art_increase_spike_density.csv", 123.7933870116974,
     21.39034039366263, 8, 3708.659403701186, 342.13056662363124, 25, 0.9976227162667838),
    ("realKnownCause/nyc_taxi.csv", 2591.1600397475954, 6.1912633905848375, 0,
     9257.508834621383, 0.0, 84, 0.85654741500648),
    ("realTweets/Twitter_volume_AAPL.csv", 7101.712689143147, 83.28381514034676, 81,
     4236.093697020435, 0.0, 62, 0.2035436621488074),
    ("realKnownCause/machine_temperature_system_failure.csv", 4016.3436135033835,
     4.643298549951331, 0, 1546.253431977136, 0.0, 0, 0.0),
    ("artificialNoAnomaly/art_flatline.csv", 0.0, 0.0, 0, 0.0, 0.0, 0, 0.0),
    ("realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv", 1785.9562938192748, 65.95876692978297,
     46, 1011.0906575378145, 0.0, 72, 0.21719368959688581),
    ("realTraffic/occupancy_6005.csv", 1494.6793305668923, 17.155229443503874, 8,
     834.267568574306, 0.0, 61, 0.4852349575599902),
]
# fmt: on

DAY = 288  # readings per synthetic cycle: 72 blocks of 4


def nab_values(key: str) -> list[float]:
    if not NAB.is_dir():  # a missing corpus is a broken checkout, not a reason to pass quietly
        pytest.fail(f"NAB data missing at {NAB}: ../shared must sit beside the repository")
    return read_series(NAB / "data" / key)[1]["value"].tolist()


def run(tracker: PeriodTracker, values: Iterable[float]) -> list[tuple[float, float]]:
    """(z, strength) per reading, the way the caller uses it: deviation first, then update."""
    out = []
    for v in values:
        out.append(tracker.deviation(v))
        tracker.update(v)
    return out


def cycle(start: int, n: int, rng: random.Random) -> list[float]:
    """Readings `start` .. `start + n - 1` of a noisy sine of period `DAY`, from 5 to 15."""
    return [
        10 + 5 * math.sin(2 * math.pi * i / DAY) + rng.gauss(0, 0.1)
        for i in range(start, start + n)
    ]


@pytest.mark.parametrize(
    ("key", "z_sum", "z_max", "z_over_10", "strength_sum", "term", "period", "strength"),
    GOLDEN,
    ids=[g[0].split("/")[1] for g in GOLDEN],
)
def test_reproduces_the_research_version_on_nab(
    key: str,
    z_sum: float,
    z_max: float,
    z_over_10: int,
    strength_sum: float,
    term: float,
    period: int,
    strength: float,
) -> None:
    tracker = PeriodTracker()
    out = run(tracker, nab_values(key))
    zs = [z for z, _ in out]
    assert sum(zs) == pytest.approx(z_sum, rel=1e-9, abs=1e-12)
    assert max(zs) == pytest.approx(z_max, rel=1e-9, abs=1e-12)
    assert sum(z > 10 for z in zs) == z_over_10
    assert sum(s for _, s in out) == pytest.approx(strength_sum, rel=1e-9, abs=1e-12)
    cycle_term = sum(10 * (z - 10) for z, s in out if s > 0.7 and z > 10)
    assert cycle_term == pytest.approx(term, rel=1e-9, abs=1e-12)
    assert tracker.period == period
    assert tracker.strength == pytest.approx(strength, rel=1e-9, abs=1e-12)


def test_finds_a_sine_cycle_and_flags_the_wrong_phase() -> None:
    rng = random.Random(1)
    tracker = PeriodTracker()
    run(tracker, cycle(0, 20 * DAY, rng))
    assert tracker.period == DAY // 4
    assert tracker.strength > 0.9

    normal = run(tracker, cycle(20 * DAY, DAY, rng))
    assert max(z for z, _ in normal) < 3.0

    # just before the trough (phase 216, value 5), read the peak value (15) for 8 readings
    run(tracker, cycle(21 * DAY, 212, rng))
    wrong = run(tracker, [15 + rng.gauss(0, 0.1) for _ in range(8)])
    assert all(z > 10 for z, _ in wrong)
    assert all(s > 0.9 for _, s in wrong)  # and the cycle is trusted: the caller's gate is 0.7


def test_deviation_is_pure_and_matches_what_update_leaves() -> None:
    rng = random.Random(2)
    tracker = PeriodTracker()
    # 288 blocks: four estimates (where `deviation` estimates on a copy), the last two with a
    # period, so `deviation` also measures gaps
    for v in cycle(0, 4 * DAY, rng):
        before = pickle.dumps(tracker)
        z, strength = tracker.deviation(v)
        assert pickle.dumps(tracker) == before, "deviation changed the tracker's state"
        assert tracker.deviation(v) == (z, strength)
        tracker.update(v)
        assert strength == tracker.strength  # the strength `update(v)` leaves, as in the research
    assert tracker.period == DAY // 4


def test_pickle_round_trip_keeps_the_outputs() -> None:
    rng = random.Random(3)
    tracker = PeriodTracker()
    run(tracker, cycle(0, 10_000, rng))
    state = pickle.dumps(tracker, protocol=pickle.HIGHEST_PROTOCOL)
    assert len(state) < 1500  # the float32 history: 256 block means in 1 KB
    restored = pickle.loads(state)
    rest = cycle(10_000, 2 * DAY, rng)
    assert run(restored, rest) == run(tracker, rest)
    assert pickle.dumps(restored) == pickle.dumps(tracker)


def test_a_flat_series_has_no_period() -> None:
    tracker = PeriodTracker()
    out = run(tracker, [42.0] * 5_000)
    assert tracker.period == 0
    assert out == [(0.0, 0.0)] * 5_000


def test_tolerance_must_stay_inside_the_history() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        PeriodTracker(tolerance=5, min_lag=4)
