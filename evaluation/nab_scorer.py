"""The NAB score, written from the published method (Lavin & Ahmad 2015 and NAB's scoring rules).

For one detector and one application profile (tp/fp/fn weights):

- A row is a *detection* when its anomaly score is at or above the threshold.
- Rows of the probation period (the first 15 % of each file, at most 750 rows) are not scored:
  a detector is still learning there.
- Each labelled anomaly window is worth the scaled sigmoid of the position of its *earliest*
  detection: ``sigma(p) = 2 / (1 + exp(5 p)) - 1`` with ``p = -(last_row - row + 1) / width``,
  so ``p = -1`` at the window's first row (credit 1 after dividing by ``sigma(-1)``) and credit
  falls towards 0 at its last row; times ``tp_weight``. Later detections in the same window
  earn nothing. A window without a detection costs ``fn_weight``.
- A detection outside every window costs ``fp_weight`` times a weight in [-1, 0): -1 before
  the first window of a file, and after a window ``sigma(distance / (width - 1))`` of the
  distance to that window's last row, so an alarm just after a window costs almost nothing and
  one more than three widths away costs the full -1. Every such row counts, which is why a
  detector that keeps alarming through a long anomaly is punished.
- One threshold per profile is chosen for the whole corpus: the one that maximises the summed
  raw score. The raw score is normalised so that the null detector (no detections) scores 0 and
  the perfect detector (every window at its first row, nothing else) scores 100.

Threshold optimisation evaluates *every* distinct score of the corpus as a threshold in one
pass over the rows sorted by score (a few numpy sorts and cumulative sums), so the 365 k-row
corpus is optimised for three profiles in well under a second.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from anomstream.evaluation.nab_corpus import DataFile, Profile

__all__ = [
    "PROBATION_FRACTION",
    "PROBATION_MAX_ROWS",
    "ProfileResult",
    "Sweep",
    "probation_rows",
    "row_weights",
    "scaled_sigmoid",
    "score_corpus",
]

PROBATION_FRACTION = 0.15
PROBATION_MAX_ROWS = 750  # 15 % of NAB's nominal 5000-row file


def scaled_sigmoid(position: np.ndarray | float) -> np.ndarray:
    """NAB's weighting: 1-ish well before a window end, 0 at it, -1 far (> 3 widths) past it."""
    x = np.asarray(position, dtype=float)
    return np.where(x > 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0)


def probation_rows(n_rows: int) -> int:
    return min(math.floor(PROBATION_FRACTION * n_rows), PROBATION_MAX_ROWS)


_MAX_TP = float(scaled_sigmoid(-1.0))  # credit of a detection on a window's first row


def row_weights(n_rows: int, windows: tuple[tuple[int, int], ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per row: its window's index (-1 outside windows) and its unweighted sweep score.

    Inside a window the value is the TP credit in (0, 1]; outside it is the FP weight in
    [-1, 0). Profiles only multiply these by their weights, so they are computed once.
    """
    rows = np.arange(n_rows)
    window = np.full(n_rows, -1, dtype=np.int64)
    weight = np.full(n_rows, -1.0)  # a false alarm before any window costs the full weight
    for w, (lo, hi) in enumerate(windows):
        width = hi - lo + 1
        window[lo : hi + 1] = w
        weight[lo : hi + 1] = scaled_sigmoid(-(hi - rows[lo : hi + 1] + 1) / width) / _MAX_TP
        nxt = windows[w + 1][0] if w + 1 < len(windows) else n_rows
        past = (rows[hi + 1 : nxt] - hi) / max(width - 1, 1)
        weight[hi + 1 : nxt] = scaled_sigmoid(past)
    return window, weight


@dataclass(frozen=True)
class ProfileResult:
    """The best threshold of one profile and what it scores."""

    profile: str
    threshold: float
    score: float  # normalised: null detector 0, perfect detector 100
    raw: float
    tp: int  # windows detected
    fn: int  # windows missed
    fp: int  # scored rows at or above the threshold outside every window
    windows: int


class Sweep:
    """The scored rows of a set of files, sorted by anomaly score, ready for any profile."""

    def __init__(self, corpus: Mapping[str, DataFile], scores: Mapping[str, np.ndarray]) -> None:
        parts_s, parts_w, parts_u = [], [], []
        n_windows = 0
        for key, data in corpus.items():
            s = np.asarray(scores[key], dtype=float)
            if len(s) != data.n_rows:
                raise ValueError(f"{key}: {len(s)} scores for {data.n_rows} data rows")
            window, weight = row_weights(data.n_rows, data.windows)
            start = probation_rows(data.n_rows)
            # window ids made corpus-wide so windows of different files stay apart
            parts_w.append(np.where(window[start:] >= 0, window[start:] + n_windows, -1))
            parts_s.append(s[start:])
            parts_u.append(weight[start:])
            n_windows += len(data.windows)
        scores_all = np.concatenate(parts_s) if parts_s else np.zeros(0)
        order = np.argsort(-scores_all, kind="stable")
        self.scores = scores_all[order]
        self.window = np.concatenate(parts_w)[order] if parts_w else np.zeros(0, np.int64)
        self.weight = np.concatenate(parts_u)[order] if parts_u else np.zeros(0)
        self.n_windows = n_windows
        self._prepare()

    def _prepare(self) -> None:
        inside = self.window >= 0
        self._fp_rows = np.cumsum(~inside)
        self._fp_weight = np.cumsum(np.where(inside, 0.0, self.weight))
        # A window's credit at a threshold is the best (= earliest) detected row's credit:
        # a running max per window, taken in detection order (group by window, stable).
        pos = np.flatnonzero(inside)
        pos = pos[np.argsort(self.window[pos], kind="stable")]
        ids = self.window[pos]
        offset = 2.0 * ids  # credits lie in (0, 1]: offsets keep the groups' maxima apart
        best = np.maximum.accumulate(self.weight[pos] + offset) - offset
        first = np.r_[True, ids[1:] != ids[:-1]] if len(ids) else np.zeros(0, bool)
        gain = np.where(first, best, best - np.r_[0.0, best[:-1]])
        self._tp_gain = np.zeros(len(self.scores))
        self._tp_gain[pos] = gain
        self._detected = np.zeros(len(self.scores))
        self._detected[pos[first]] = 1.0
        self._tp_credit = np.cumsum(self._tp_gain)
        self._tp_windows = np.cumsum(self._detected)
        # candidate thresholds: each distinct score, i.e. the last row of each run of ties
        s = self.scores
        self._ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True]) if len(s) else np.zeros(0, int)

    def _raw(self, profile: Profile, ends: np.ndarray) -> np.ndarray:
        detected = self._tp_windows[ends]
        return (
            profile.tp_weight * self._tp_credit[ends]
            - profile.fn_weight * (self.n_windows - detected)
            + profile.fp_weight * self._fp_weight[ends]
        )

    def _result(self, profile: Profile, end: int | None, threshold: float) -> ProfileResult:
        null = -profile.fn_weight * self.n_windows
        perfect = profile.tp_weight * self.n_windows
        if end is None:
            raw, tp, fp = null, 0, 0
        else:
            raw = float(self._raw(profile, np.array([end]))[0])
            tp, fp = int(self._tp_windows[end]), int(self._fp_rows[end])
        span = perfect - null
        score = 100.0 * (raw - null) / span if span else 0.0
        return ProfileResult(
            profile.name, threshold, score, raw, tp, self.n_windows - tp, fp, self.n_windows
        )

    def optimise(self, profile: Profile) -> ProfileResult:
        """The threshold with the best raw score (ties: the highest such threshold)."""
        none_detected = -profile.fn_weight * self.n_windows
        if not len(self._ends):
            return self._result(profile, None, math.inf)
        raws = self._raw(profile, self._ends)
        best = int(np.argmax(raws))
        if raws[best] <= none_detected:
            return self._result(profile, None, float(np.nextafter(self.scores[0], np.inf)))
        end = int(self._ends[best])
        return self._result(profile, end, float(self.scores[end]))

    def at_threshold(self, profile: Profile, threshold: float) -> ProfileResult:
        """The score with a given threshold (e.g. one chosen on other files)."""
        n_detected = int(np.searchsorted(-self.scores, -threshold, side="right"))
        end = n_detected - 1 if n_detected else None
        return self._result(profile, end, threshold)


def score_corpus(
    corpus: Mapping[str, DataFile],
    scores: Mapping[str, np.ndarray],
    profiles: Mapping[str, Profile],
) -> dict[str, ProfileResult]:
    """Optimise the threshold of every profile over all files of `corpus` and score them."""
    sweep = Sweep(corpus, scores)
    return {name: sweep.optimise(profile) for name, profile in profiles.items()}
