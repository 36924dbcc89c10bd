"""The NAB scorer: hand-computed cases, the null and perfect detectors, Numenta HTM's numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from anomstream.evaluation.nab_corpus import (
    DataFile,
    Profile,
    load_corpus,
    match_results,
    profiles_in,
    read_scores,
)
from anomstream.evaluation.nab_scorer import Sweep, probation_rows, score_corpus

NAB = Path(__file__).resolve().parents[2] / "shared/datasets/nab"
STANDARD = Profile("standard", tp_weight=1.0, fp_weight=0.11, fn_weight=1.0)
LOW_FN = Profile("reward_low_FN_rate", tp_weight=1.0, fp_weight=0.11, fn_weight=2.0)

# 100 rows (probation: the first 15), one window of 10 rows: rows 50..59.
N, LO, HI = 100, 50, 59
FILE = DataFile("cat/x.csv", np.arange(N).astype("datetime64[m]"), ((LO, HI),))


def sigma(x: float) -> float:
    """The scaled sigmoid as Lavin & Ahmad define it, written out independently of the scorer."""
    return -1.0 if x > 3.0 else 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def credit(row: int) -> float:
    """TP credit of a first detection at `row` of the 10-row window, 1 at its first row."""
    return sigma(-(HI - row + 1) / 10) / sigma(-1.0)


def at(threshold: float, profile: Profile = STANDARD, **rows: float) -> float:
    scores = np.zeros(N)
    for name, value in rows.items():
        scores[int(name[1:])] = value
    return Sweep({FILE.key: FILE}, {FILE.key: scores}).at_threshold(profile, threshold).raw


def test_probation_is_15_percent_capped_at_750_rows() -> None:
    assert probation_rows(100) == 15
    assert probation_rows(4032) == 604
    assert probation_rows(22695) == 750


def test_detection_on_the_first_row_of_a_window_earns_the_full_tp_weight() -> None:
    assert at(0.5, r50=1.0) == pytest.approx(1.0)


def test_late_detection_earns_less() -> None:
    # last row: position -1/10, sigma(-0.1) / sigma(-1) = 0.2482
    assert at(0.5, r59=1.0) == pytest.approx(credit(59))
    assert credit(59) == pytest.approx(0.24824, abs=1e-5)
    assert at(0.5, r55=1.0) == pytest.approx(credit(55))


def test_only_the_earliest_detection_in_a_window_counts() -> None:
    assert at(0.5, r52=1.0, r53=1.0, r58=1.0) == pytest.approx(credit(52))


def test_false_positive_before_any_window_costs_the_full_fp_weight() -> None:
    # plus the missed window
    assert at(0.5, r20=1.0) == pytest.approx(-0.11 - 1.0)


def test_false_positive_after_a_window_is_weighted_by_its_distance() -> None:
    near = sigma((62 - HI) / (10 - 1))  # 3 rows past a 10-row window: about -0.93
    assert at(0.5, r50=1.0, r62=1.0) == pytest.approx(1.0 + 0.11 * near)
    assert at(0.5, r50=1.0, r99=1.0) == pytest.approx(1.0 - 0.11)  # > 3 widths away


def test_missed_window_costs_the_fn_weight() -> None:
    assert at(0.5) == pytest.approx(-1.0)
    assert at(0.5, LOW_FN) == pytest.approx(-2.0)


def test_probation_rows_are_not_scored() -> None:
    assert at(0.5, r3=1.0, r50=1.0) == pytest.approx(1.0)


def test_threshold_optimisation_picks_the_best_cut() -> None:
    scores = np.zeros(N)
    scores[20], scores[55] = 0.9, 0.8  # an FP scored higher than a mid-window detection
    result = Sweep({FILE.key: FILE}, {FILE.key: scores}).optimise(STANDARD)
    assert result.threshold == 0.8
    assert result.raw == pytest.approx(-0.11 + credit(55))
    assert (result.tp, result.fn, result.fp) == (1, 0, 1)
    assert result.score == pytest.approx(100 * (result.raw + 1) / 2)


def nab_dir() -> Path:
    if not NAB.is_dir():  # a missing corpus is a broken checkout, not a reason to pass quietly
        pytest.fail(f"NAB data missing at {NAB}: ../shared must sit beside the repository")
    return NAB


@pytest.fixture(scope="module")
def corpus() -> dict[str, DataFile]:
    return load_corpus(nab_dir())


def test_perfect_detector_scores_100_and_null_detector_0(corpus: dict[str, DataFile]) -> None:
    perfect, null = {}, {}
    for key, data in corpus.items():
        perfect[key] = np.zeros(data.n_rows)
        perfect[key][[lo for lo, _ in data.windows]] = 1.0
        null[key] = np.full(data.n_rows, 0.5)
    for result in score_corpus(corpus, perfect, profiles_in(NAB)).values():
        assert result.score == pytest.approx(100.0)
        assert (result.tp, result.fp, result.windows) == (116, 0, 116)
    for result in score_corpus(corpus, null, profiles_in(NAB)).values():
        assert result.score == pytest.approx(0.0)


def test_reproduces_numenta_htm(corpus: dict[str, DataFile]) -> None:
    found = match_results(NAB / "results/numenta", corpus)
    assert len(found) == 58
    scores = {key: read_scores(path) for key, path in found.items()}
    results = score_corpus(corpus, scores, profiles_in(NAB))
    assert results["standard"].score == pytest.approx(70.10, abs=0.05)
    assert results["reward_low_FP_rate"].score == pytest.approx(63.21, abs=0.05)
    assert results["reward_low_FN_rate"].score == pytest.approx(74.32, abs=0.05)
    standard = results["standard"]
    assert standard.threshold == pytest.approx(0.5431, abs=1e-4)
    assert (standard.tp, standard.fp) == (96, 153)
