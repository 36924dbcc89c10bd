"""The machine model's tail calibration: it calibrates again when its anchor is too high (a
young model's surprisals), never because of a fault."""

from __future__ import annotations

import math
import random

from anomstream.detectors.surprisal_tail import SurprisalTail

ALERT = math.log(1e-5)  # the log tail of the policy's threshold, 0.99999


def _calibrated(rng: random.Random, offset: float, readings: int = 100) -> SurprisalTail:
    tail = SurprisalTail()
    for _ in range(readings):
        tail.update(offset + rng.expovariate(1.0))
    assert tail.ready
    return tail


def test_a_tail_calibrated_on_inflated_surprisals_calibrates_again() -> None:
    rng = random.Random(1)
    tail = _calibrated(rng, offset=40.0)  # a young model: every surprisal ~40 units too high
    assert tail.log_tail(15.0) == 0.0  # deaf: a 1-in-3-million reading scores 0
    for _ in range(2 * tail.drought):
        tail.update(rng.expovariate(1.0))  # the settled model's surprisals
    assert tail.log_tail(15.0) < ALERT
    assert tail.log_tail(4.0) > math.log(1e-3)  # and an ordinary reading is ordinary


def test_while_it_calibrates_again_the_old_estimate_still_scores() -> None:
    rng = random.Random(2)
    tail = _calibrated(rng, offset=40.0)
    for _ in range(tail.drought):
        tail.update(rng.expovariate(1.0))
    assert tail.ready and tail.log_tail(200.0) < ALERT  # a reading extreme even to the old tail


def test_a_fault_never_recalibrates_the_tail_away() -> None:
    rng = random.Random(3)
    tail = _calibrated(rng, offset=0.0, readings=2000)
    before = tail.log_tail(25.0)
    assert before < ALERT
    for _ in range(1000):  # a long fault, learned at the relation model's protect weight
        tail.update(25.0 + rng.expovariate(1.0), weight=0.02)
        assert tail._buffer is None  # no recalibration started
    assert tail.log_tail(25.0) < ALERT


def test_clean_surprisals_do_not_recalibrate() -> None:
    rng = random.Random(4)
    tail = _calibrated(rng, offset=0.0)
    for _ in range(20_000):
        tail.update(rng.expovariate(1.0))
        assert tail._buffer is None


def test_a_state_from_before_recalibration_restores() -> None:
    tail = _calibrated(random.Random(5), offset=0.0)
    old = tail.__getstate__()[:8]  # as pickled before `_dry` existed
    restored = SurprisalTail.__new__(SurprisalTail)
    restored.__setstate__(old)
    assert restored.ready and restored._dry == 0
    assert restored.log_tail(9.0) == tail.log_tail(9.0)
