"""Per-machine multivariate model: faults that break the relations between sensors.

A motor current that rises while load and speed do not, a pressure that no longer matches the
flow: every sensor stays inside its own normal range, so per-sensor models see nothing, but the
reading is far from what the *other* sensors predict. This is the job of classical multivariate
statistical process control (Hotelling T² and Q on a PCA model, made adaptive by recursive or
exponentially weighted updates: Li, Yue, Valle-Cervantes & Qin 2000). `RelationModel` keeps the
same exponentially weighted correlation such methods start from, but reads it through its
precision matrix Λ instead of a truncated eigenbasis:

- `D² = zᵀΛz`, the Mahalanobis distance of the standardised reading `z`: T² and Q of a PCA model
  at once (every direction, weighted by its inverse variance), with no number of components
  to choose;
- `r_i = (Λz)_i / sqrt(Λ_ii)`, the standardised residual of regressing sensor i on all the others,
  all from the one matrix (no p separate regressions). `max r_i²` is sharper than D² on a fault
  in one sensor among many, D² on a fault spread over many; the surprisal of the reading is the
  larger of the two nominal surprisals, calibrated to an empirical tail (`SurprisalTail`).
- the attribution is `r_i² / Σ_j r_j²`: the sensor least consistent with the others ranks first.

Sensors missing from a reading (or non-finite) are scored by conditioning on the observed ones:
the precision of the observed block of the correlation, exactly, cached per missing pattern; they
are not learned. A sensor seen for the first time is learned from then on and takes part once
its own standardisation and its correlations have formed (`grace` readings each).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from river.base import AnomalyDetector

from anomstream.detectors import relation_kernel as kernel
from anomstream.detectors.relation_persistence import Persistence
from anomstream.detectors.relation_stats import RelationStats, Selection
from anomstream.detectors.surprisal_tail import SurprisalTail, chi2_log_sf, max_residual_log_sf

__all__ = ["RelationModel"]

# Scores stop short of 1.0 by this much, so a float threshold below 1 is always comparable and
# "more anomalous" stays distinguishable from "exactly certain" (which no online model is).
_MIN_TAIL = 1e-15
_LOG_2 = math.log(2.0)
# The persistence averages a reading leads to: sensor indices, values, and their surprisal.
_Averaged = tuple[np.ndarray, np.ndarray, float | None]
# Share of recent readings scoring high that marks a run (a fault) rather than chance: 10 %,
# ten times the clean rate at protect_score = 0.99.
_RUN_SHARE = 0.1
# Readings per scored sensor before the surprisals are calibrated and scored: a precision of
# k sensors estimated from n readings inflates D² out of sample by about k / n, so calibrating
# on n < 4k readings would calibrate to the model's own estimation noise (a tail far heavier
# than the settled model's, which the long memory would then take thousands of readings to
# forget). Below 8 sensors `grace` is the longer wait anyway.
_SETTLED = 4
# Attributes rebuilt by `_reset_caches`, never pickled.
_DERIVED = (
    "last_contributions", "_keys", "_keys_sel", "_slot", "_inv_sqrt_diag", "_scored_names",
    "_settled", "_sigma", "_sub",
)
# Missing-sensor patterns whose precision is cached between refreshes: a machine with a few
# intermittent sensors has a few patterns; more than this is churn, not worth the memory.
_PATTERNS = 8


class RelationModel(AnomalyDetector):
    """Exponentially weighted precision-matrix model of a machine's sensors; score in [0, 1].

    Parameters
    ----------
    memory
        Effective memory in readings of every running statistic (EW weight 1/memory). Relations
        between sensors are physics (a pump curve, a motor's load line) and change slowly, and
        the precision of p sensors needs many more than p readings to be stable (its
        out-of-sample D² inflation is about p / n_eff), so the memory is long.
    grace
        Readings a sensor needs for its mean and variance, then again for its correlations,
        before it takes part; below 2 such sensors the score is 0.
    refresh
        Readings between recomputations of the precision (an eigendecomposition, O(p³)): a small
        share of `memory`, so the precision is never far behind the correlation it comes from.
    tail_share, calibration
        Anchor share and warm-up (readings) of the empirical tail of the surprisals.
    protect_score
        Readings scoring at or above this, and readings inside a run of such readings, are
        learned at `protect_weight` times the usual weight: a model that learns a fault at full
        speed stops seeing it while it lasts. 0.99 (1 clean reading in 100) leaves clean
        estimates practically unweighted, and catches the quieter readings of a fault that a
        stricter level lets through at full weight.
    protect_weight
        Learning weight of such readings; > 0 so a change for good is learned eventually (its
        spread widens the winsorised variances within ~`memory / (8 * protect_weight)`
        readings, 12,500 by default, after which it scores low and is learned at full weight).
        Protection holds only while less than half of what the model learned (over its memory,
        or its life if shorter) was protected: the baseline it protects must be the majority of
        its experience. Once the flagged behaviour is as common as the rest, the data no longer
        say which one is normal. A young model needs this: one that learned only its machine's
        idle readings saw each duty cycle as a fault, protected every one of them, and alerted
        on every cycle (measured: 24 false alerts in 6,000 readings of a machine idle for its
        first 200 readings).
    persistence
        λ of the persistence part (`relation_persistence.Persistence`, the residual form of a
        multivariate EWMA, with its own calibrated tail; the reading's tail is then twice the
        smaller of the two); 0 leaves it out. Off by default: measured at λ = 0.1 it caught
        more simulated relation faults (decouple 5 -> 8 of 10, relation_drift 6 -> 8) but
        brought 12 false alerts in 135,530 clean simulated readings (0 without), 3.72 % of
        clean time inside an alert (2.27 %), and no TEP target fault (13 of 18 either way).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(3)
    >>> model = RelationModel()
    >>> for _ in range(600):
    ...     load, speed = rng.gauss(0, 1), rng.gauss(0, 1)
    ...     current = 2 * load + speed + rng.gauss(0, 0.2)
    ...     _ = model.score_learn_one({"load": load, "speed": speed, "current": current})
    >>> model.score_one({"load": 0.5, "speed": 0.1, "current": 1.1}) < 0.99
    True
    >>> model.score_one({"load": 0.5, "speed": 0.1, "current": 2.5}) > 0.9999
    True
    >>> max(model.last_contributions, key=model.last_contributions.get)
    'current'
    """

    def __init__(
        self,
        memory: int = 2000,
        grace: int = 30,
        refresh: int = 50,
        tail_share: float = 0.05,
        calibration: int = 100,
        protect_score: float = 0.99,
        protect_weight: float = 0.02,
        persistence: float = 0.0,
    ) -> None:
        self.memory = memory
        self.grace = grace
        self.refresh = refresh
        self.tail_share = tail_share
        self.calibration = calibration
        self.protect_score = protect_score
        self.protect_weight = protect_weight
        self.persistence = persistence
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        self._stats = RelationStats(memory, grace)
        self._persistence = (
            Persistence(persistence, memory, grace, self._tail_params(), protect_weight)
            if persistence
            else None
        )
        self._tail = SurprisalTail(*self._tail_params())
        self._since_refresh = 0
        self._recent = 0.0  # EW share of recent readings at or above protect_score
        self._learned = 0  # readings learned, up to `memory`
        self._protected = 0.0  # share of them learned at protect_weight (EW over `memory`)
        self._reset_caches()

    def _tail_params(self) -> tuple[float, int, int, float]:
        return self.tail_share, self.memory, self.calibration, 1.0 - self.protect_score

    @classmethod
    def _unit_test_params(cls) -> Any:
        yield {}
        yield {"memory": 200, "grace": 5, "refresh": 10, "calibration": 20}

    # Caches and the last attribution are derived, not learned: kept out of the pickle, so a
    # checkpoint is small and `score_one` leaves the pickled state untouched.
    def _reset_caches(self) -> None:
        self.last_contributions: dict[str, float] = {}
        self._keys: tuple | None = None
        self._keys_sel: Selection = slice(None)
        self._slot = np.zeros(0, dtype=np.intp)
        self._inv_sqrt_diag = np.zeros(0)
        self._scored_names: list[str] = []
        self._settled = False
        self._sigma: np.ndarray | None = None
        self._sub: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
        self._derive()

    def _derive(self) -> None:
        """Rebuild what the scoring reads from the precision (after a refresh or unpickling)."""
        stats = self._stats
        self._slot = np.full(stats.size, -1, dtype=np.intp)
        self._slot[stats.scored] = np.arange(len(stats.scored))
        diag = np.diag(stats.precision)
        self._inv_sqrt_diag = 1.0 / np.sqrt(diag) if len(diag) else diag
        self._scored_names = [self._names[i] for i in stats.scored.tolist()]
        k = len(stats.scored)
        self._settled = k >= 2 and int(stats.c[stats.scored].min()) >= _SETTLED * k
        self._sigma = None
        self._sub = {}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for name in _DERIVED:
            del state[name]
        return dict(sorted(state.items()))  # one byte string per state, however it was built

    def __setstate__(self, state: dict) -> None:
        # A checkpoint written before the persistence part existed restores without it.
        state.setdefault("persistence", 0.0)
        state.setdefault("_persistence", None)
        # One from before protection was bounded: a settled model, nothing protected lately.
        state.setdefault("_learned", state.get("memory", 2000))
        state.setdefault("_protected", 0.0)
        self.__dict__.update(state)
        self._reset_caches()

    def learn_one(self, x: dict) -> None:
        self._process(x, learn=True)

    def score_one(self, x: dict) -> float:
        score, self.last_contributions = self._process(x, learn=False)
        return score

    def score_learn_one(self, x: dict) -> float:
        """`score_one(x)` then `learn_one(x)` in one pass (learning needs the score, to protect
        the baseline); the same result and state as the two calls."""
        score, self.last_contributions = self._process(x, learn=True)
        return score

    def _parse(self, x: dict, add: bool) -> tuple[Selection, np.ndarray]:
        """The sensors of a reading (indices, or slice(None) for all of them in index order) and
        their finite values; unknown sensors are added if `add`, else ignored."""
        keys = tuple(x)
        if keys == self._keys:
            try:
                values = np.fromiter(x.values(), dtype=float, count=len(keys))
            except (TypeError, ValueError):
                values = np.fromiter((_as_float(v) for v in x.values()), dtype=float, count=len(keys))
            sel: Selection = self._keys_sel
        else:
            index = self._index
            if add:
                for name in keys:
                    if name not in index:
                        index[name] = len(self._names)
                        self._names.append(name)
                if len(self._names) > self._stats.size:
                    self._stats.grow(len(self._names))
                    if self._persistence is not None:
                        self._persistence.grow(len(self._names))
                    self._derive()
            idx = np.fromiter((index.get(k, -1) for k in keys), dtype=np.intp, count=len(keys))
            values = np.fromiter((_as_float(v) for v in x.values()), dtype=float, count=len(keys))
            if (idx >= 0).all():
                full = len(idx) == self._stats.size and bool((idx == np.arange(len(idx))).all())
                sel = slice(None) if full else idx
                self._keys, self._keys_sel = keys, sel
            else:
                known = idx >= 0
                sel, values = idx[known], values[known]
        finite = np.isfinite(values)
        if not finite.all():
            sel = np.arange(self._stats.size)[sel][finite]
            values = values[finite]
        return sel, values

    def _process(self, x: dict, learn: bool) -> tuple[float, dict[str, float]]:
        stats = self._stats
        sel, values = self._parse(x, add=learn)
        z, warm, full = stats.z(sel, values)
        score, surprisal, contributions, averaged = self._score(sel, z, warm, full)
        if learn:
            # Faults are runs, and a run's quieter readings are still the fault: protection stays
            # on while a share of the last ~`grace` readings scored high (one clean reading in
            # 100 scores above 0.99, so clean data hardly ever keeps it on).
            flagged = score >= self.protect_score
            self._recent += (float(flagged) - self._recent) / self.grace
            weight = self._weight(flagged or self._recent > _RUN_SHARE)
            if surprisal is not None:
                self._tail.update(surprisal, weight)
            stats.learn(sel, values, z, warm, full, weight)
            if averaged is not None:
                assert self._persistence is not None
                self._persistence.learn(*averaged)
            self._since_refresh += 1
            established = self._tail.ready
            if self._since_refresh >= self.refresh or (
                len(stats.scored) < stats.size
                and stats.ready_sensors(established).size != stats.scored.size
            ):
                stats.refresh(established)
                self._since_refresh = 0
                self._derive()
        return score, contributions

    def _weight(self, in_run: bool) -> float:
        """Learning weight of a reading: `protect_weight` inside a run while less than half of
        what the model learned was protected (see `protect_weight`), else 1."""
        protect = in_run and self._protected < 0.5
        self._learned = min(self._learned + 1, self.memory)
        self._protected += (float(protect) - self._protected) / self._learned
        return self.protect_weight if protect else 1.0

    def _score(
        self, sel: Selection, z: np.ndarray, warm: np.ndarray, full: bool
    ) -> tuple[float, float | None, dict[str, float], _Averaged | None]:
        """Score, nominal surprisal (None: not scored) and attribution of one standardised
        reading, and the persistence averages it leads to (for `Persistence.learn`; None:
        unchanged)."""
        stats = self._stats
        if not self._settled:
            return 0.0, None, {}, None
        k = len(self._inv_sqrt_diag)
        if full and k == stats.size:
            # Every sensor present and scored, in index order: the hot path, no reindexing.
            precision, inv_sqrt_diag = stats.precision, self._inv_sqrt_diag
            zs, names_idx = z, stats.scored
        else:
            idx = np.arange(stats.size)[sel]
            slot = self._slot[idx]
            use = warm & (slot >= 0)
            k = int(use.sum())
            if k < 2:
                return 0.0, None, {}, None
            slots = slot[use]
            order = np.argsort(slots)
            slots, zs, names_idx = slots[order], z[use][order], idx[use][order]
            if k == len(self._inv_sqrt_diag):
                precision, inv_sqrt_diag = stats.precision, self._inv_sqrt_diag
            else:
                precision, inv_sqrt_diag = self._observed(slots)
        single, r, r2, total = _surprisal(precision, inv_sqrt_diag, zs, k)
        persistence, persistent, averaged = self._persistence, None, None
        if persistence is not None:
            e, persistent, r_m = persistence.step(names_idx, r)
            averaged = names_idx, e, persistent
        if not self._tail.ready:
            return 0.0, single, {}, averaged
        log_tail = self._tail.log_tail(single)
        if persistent is not None and persistence is not None and persistence.tail.ready:
            # Two calibrated statistics, either of which may call the reading rare: its tail is
            # twice the smaller one (Bonferroni), and the one that drives it attributes it.
            log_persistent = persistence.tail.log_tail(persistent)
            if log_persistent < log_tail:
                r = r_m
                r2 = r * r
                total = float(r2.sum())
            log_tail = _LOG_2 + min(log_tail, log_persistent)
        score = 1.0 - max(math.exp(min(log_tail, 0.0)), _MIN_TAIL)
        if not math.isfinite(total):  # squares overflowed: shares from residuals scaled to <= 1
            r = r / float(np.abs(r).max())
            r2 = np.nan_to_num(r * r)
            total = float(r2.sum())
        if score <= 0.0 or not total > 0.0:
            return 0.0, single, {}, averaged
        if names_idx is stats.scored:
            names = self._scored_names
        else:
            names = [self._names[i] for i in names_idx.tolist()]
        return score, single, {name: share / total for name, share in zip(names, r2.tolist())}, averaged

    def _observed(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Precision of the observed sensors' marginal (conditioning on what is there), cached per
        pattern until the next refresh: missing readings come in patterns, not one-offs."""
        key = slots.tobytes()
        hit = self._sub.get(key)
        if hit is None:
            if self._sigma is None:
                self._sigma = np.linalg.inv(self._stats.precision)
            precision = np.linalg.inv(self._sigma[np.ix_(slots, slots)])
            hit = precision, 1.0 / np.sqrt(np.diag(precision))
            if len(self._sub) >= _PATTERNS:
                self._sub.clear()
            self._sub[key] = hit
        return hit


def _surprisal(
    precision: np.ndarray, inv_sqrt_diag: np.ndarray, z: np.ndarray, k: int
) -> tuple[float, np.ndarray, np.ndarray, float]:
    """Nominal surprisal of a standardised reading `z` (the larger of D²'s and the largest
    conditional residual's), its conditional residuals, their squares and their sum."""
    d2, r, r2, r_max, total = kernel.residuals(precision, inv_sqrt_diag, z)
    surprisal = -max(chi2_log_sf(max(d2, 0.0), k), max_residual_log_sf(r_max, k))
    if surprisal != surprisal:  # NaN from inf - inf in an absurd reading: maximally surprising
        surprisal = math.inf
    return surprisal, r, r2, total


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan  # unusable values are skipped like missing ones
