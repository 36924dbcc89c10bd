"""NAB at the alert level: detection rows, fixed threshold, the same rules as the raw scorer."""

from __future__ import annotations

import numpy as np
import pytest

from anomstream.evaluation.nab_alerts import detection_scores, score_alert_rows
from anomstream.evaluation.nab_corpus import DataFile, Profile
from anomstream.evaluation.nab_scorer import Sweep

STANDARD = Profile("standard", tp_weight=1.0, fp_weight=0.11, fn_weight=1.0)
# 100 rows (probation: the first 15), one window: rows 50..59
FILE = DataFile("cat/x.csv", np.arange(100).astype("datetime64[m]"), ((50, 59),))


def test_alert_rows_score_as_raw_scores_at_a_fixed_threshold() -> None:
    rows = [20, 52, 55, 90]
    raw = np.zeros(100)
    raw[rows] = [0.7, 0.9, 0.95, 0.6]
    expected = Sweep({FILE.key: FILE}, {FILE.key: raw}).at_threshold(STANDARD, 0.5)
    got = score_alert_rows({FILE.key: FILE}, {FILE.key: rows}, {"standard": STANDARD})["standard"]
    assert (got.tp, got.fn, got.fp) == (1, 0, 2)
    assert got.raw == pytest.approx(expected.raw)


def test_no_alerts_is_the_null_detector() -> None:
    got = score_alert_rows({FILE.key: FILE}, {}, {"standard": STANDARD})["standard"]
    assert (got.score, got.tp, got.fn, got.fp) == (0.0, 0, 1, 0)


def test_a_row_outside_the_file_is_an_error() -> None:
    with pytest.raises(ValueError, match="0..99"):
        detection_scores(100, [100])
