"""NAB at the alert level: the firing alerts a configuration sends are the detections.

`anomstream nab-score` with raw scores optimises one threshold per profile over the corpus: a
detector's best case, which no service runs at. What users receive are alerts, so this scores
those: a file's detections are the rows whose reading fired an alert (in replay, a firing
alert's `source.offset` is its row), with NAB's rules otherwise unchanged (probation, earliest
detection per window, sigmoid-weighted false positives) and no threshold search.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from anomstream.evaluation.nab_corpus import DataFile, Profile
from anomstream.evaluation.nab_scorer import ProfileResult, Sweep

__all__ = ["detection_scores", "score_alert_rows"]


def detection_scores(n_rows: int, rows: Iterable[int]) -> np.ndarray:
    """1.0 at each detection row, 0.0 elsewhere.

    >>> detection_scores(5, [1, 3]).tolist()
    [0.0, 1.0, 0.0, 1.0, 0.0]
    """
    scores = np.zeros(n_rows)
    picked = np.fromiter(rows, dtype=np.int64)
    if len(picked) and (picked.min() < 0 or picked.max() >= n_rows):
        raise ValueError(f"detection rows must lie in 0..{n_rows - 1}, got {picked.min()}..{picked.max()}")
    scores[picked] = 1.0
    return scores


def score_alert_rows(
    corpus: Mapping[str, DataFile],
    rows_by_key: Mapping[str, Iterable[int]],
    profiles: Mapping[str, Profile],
) -> dict[str, ProfileResult]:
    """Score every profile with the given detection rows per file (missing key: none).

    The threshold is fixed (0.5 on 0/1 detections), so `ProfileResult.threshold` is 0.5.
    """
    scores = {key: detection_scores(data.n_rows, rows_by_key.get(key, ())) for key, data in corpus.items()}
    sweep = Sweep(corpus, scores)
    return {name: sweep.at_threshold(profile, 0.5) for name, profile in profiles.items()}
