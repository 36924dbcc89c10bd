"""Exponentially weighted standardisation, correlation and precision of a growing set of sensors.

The state of `RelationModel`: per sensor an EW mean and variance; for the standardised readings
`z` an EW second-moment matrix (a rank-1 update per reading); and, refreshed every few readings,
the precision matrix of the shrunk correlation, from which the model reads its statistics.
Only numpy arrays and ints are kept, so the state pickles small: two p x p float64 matrices (the
moment matrix and the precision), 16 p^2 bytes in all (43 KB, 830 B per sensor, at p = 52).

The correlation is shrunk towards the identity with the Schäfer & Strimmer (2005) estimate of the
optimal intensity: the estimated sampling variance of the off-diagonal correlations over their
squared size. It needs no tuning: the intensity falls as evidence accumulates (~1/n_eff) and grows
with the number of sensors, so a 52-sensor machine with a few hundred readings is regularised
where it must be and a long-running small machine hardly at all.
"""

from __future__ import annotations

import numpy as np

from anomstream.detectors import relation_kernel as kernel

__all__ = ["RelationStats", "Selection"]

# The sensors of a reading: their indices, or slice(None) when it has every sensor in order.
Selection = np.ndarray | slice

# Variance below this share of the squared mean is a constant sensor (a setpoint, a stuck
# value): its z would be rounding noise divided by ~0, so it takes no part in relations.
_CONSTANT = 1e-12
# Smallest shrinkage intensity (the shrunk correlation's eigenvalues stay above half of it): two
# duplicated sensors (correlation 1) still give a conditional residual sd of ~sqrt(2 * 1e-3)
# ~ 0.045 correlation units instead of a division by zero.
_MIN_SHRINK = 1e-3
# Deviations are learned winsorised at this many standard deviations (a Huber-type bounded
# influence). For Gaussian data E[min(z², 9)] = 0.995, so clean estimates lose 0.5 % of their
# variance; a fault's reading moves a variance or a correlation at most 9x as far as a typical
# clean reading does, instead of without bound (a 7-sd fault would move it 49x as far, and a
# model that learns its fault's spread stops seeing the fault).
CLIP = 3.0
# A sensor's baseline is protected (anomalous readings learned at the model's small weight) only
# once it has learned this share of `memory` readings. Before, it has not seen enough of its
# machine to know its range: a duty cycle lasts hundreds of readings, and a sensor added to a
# running machine formed its variance from 30 readings of one, saw the rest of the cycle as a
# fault, protected it, and held one false alert open for 1,670 readings (measured). The
# per-sensor models watch a young sensor meanwhile.
_FORMING = 0.25


class RelationStats:
    """EW moments of z-scored sensors and the precision of their shrunk correlation."""

    def __init__(self, memory: int, grace: int) -> None:
        self.memory = memory
        self.grace = grace
        self.n = np.zeros(0, dtype=np.int64)  # readings learned per sensor (mean / variance)
        self.mean = np.zeros(0)
        self.var = np.zeros(0)
        self.c = np.zeros(0, dtype=np.int64)  # readings learned per sensor into the moments
        self.moment = np.zeros((0, 0))  # EW E[z z^T]
        # Frozen at the last refresh: the scored sensors and the precision of their z.
        self.scored = np.zeros(0, dtype=np.intp)
        self.precision = np.zeros((0, 0))
        self.steady = False  # every sensor's counts past `memory` (see `learn`)

    @property
    def forming(self) -> int:
        """Readings a sensor's baseline learns at full weight, anomalous or not."""
        return max(self.grace, int(_FORMING * self.memory))

    @property
    def size(self) -> int:
        return len(self.n)

    def grow(self, p: int) -> None:
        """Make room for sensors up to index p - 1; new ones start unlearned and unscored."""
        extra = p - self.size
        self.n = np.concatenate([self.n, np.zeros(extra, dtype=np.int64)])
        self.mean = np.concatenate([self.mean, np.zeros(extra)])
        self.var = np.concatenate([self.var, np.zeros(extra)])
        self.c = np.concatenate([self.c, np.zeros(extra, dtype=np.int64)])
        self.moment = np.pad(self.moment, ((0, extra), (0, extra)))
        self.steady = False

    def indices(self, sel: Selection) -> np.ndarray:
        """The sensor indices `sel` stands for."""
        return np.arange(self.size) if isinstance(sel, slice) else sel

    def z(self, sel: Selection, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """z-scores of `values` (sensors `sel`), the mask of those past their own warm-up, and
        whether the reading is `full`: every sensor, in index order, all past it (the hot path
        of `learn` and of the scoring)."""
        z, warm, every = kernel.standardise(
            self.indices(sel), values, self.mean, self.var, self.n, self.grace, _CONSTANT
        )
        return z, warm, every and isinstance(sel, slice)

    def learn(
        self, sel: Selection, values: np.ndarray, z: np.ndarray, warm: np.ndarray, full: bool,
        weight: float,
    ) -> None:
        """Learn one reading (`z`, `warm` and `full` as `z` returned them): the moments of the warm sensors (with the z the reading was scored
        on), then every present sensor's mean and variance.

        - Moments: weight 1/c while a sensor's moments form (an exact average of its first c
          readings), then 1/memory; a pair learns at the faster of its two sensors' rates. While
          the slowest of them forms, a sensor still forming learns even an anomalous reading at
          full weight.
        - Mean and variance: a reading scored as anomalous moves the baseline only at `weight`,
          once the baseline has formed (before that it has nothing to protect); deviations are
          winsorised at `CLIP` sd. A sensor still constant once formed starts its baseline
          over when it first moves.
        - Once every count of a reading of every sensor is past `memory`, every weight is
          weight / memory: the counts stop (they only matter below memory), and the model is
          `steady`.
        """
        all_past = kernel.learn(
            self.indices(sel), values, z, warm, float(weight), self.memory, self.forming, CLIP,
            _CONSTANT, full and self.steady, self.n, self.c, self.mean, self.var, self.moment,
        )
        if full:
            self.steady = all_past

    def ready_sensors(self, established: bool = False) -> np.ndarray:
        """Sensors whose moments have formed: they take part in the precision. In an
        `established` model (one whose scores are calibrated already) a sensor not yet taking
        part waits until its baseline has formed (`forming`): the calibration has nothing of
        its youth in it (at the start, the tail calibrates on the young model as a whole)."""
        ready = self.c >= self.grace
        if established:
            joining = self.c < self.forming
            joining[self.scored] = False  # those taking part stay
            ready &= ~joining
        return np.flatnonzero(ready)

    def refresh(self, established: bool = False) -> None:
        """Recompute the precision of the shrunk correlation of the ready sensors."""
        s = self.ready_sensors(established)
        self.scored = s
        if len(s) < 2:
            self.precision = np.zeros((0, 0))
            return
        m = self.moment[np.ix_(s, s)]
        d = np.sqrt(np.maximum(np.diag(m), 1e-12))
        r = m / np.multiply.outer(d, d)
        np.fill_diagonal(r, 1.0)
        # Effective sample size of each pair: its count while the moments are an exact average,
        # then that of the EW average (2 memory - 1); counts stop at `memory` on the hot path.
        c = self.c[s]
        n_eff = np.where(c < self.memory, c, 2 * self.memory - 1).astype(float)
        n_pair = np.minimum.outer(n_eff, n_eff)
        r2 = r * r
        np.fill_diagonal(r2, 0.0)
        noise = (1.0 - np.minimum(r2, 1.0)) ** 2 / np.maximum(n_pair - 1.0, 1.0)
        np.fill_diagonal(noise, 0.0)
        lam = float(np.clip(noise.sum() / max(r2.sum(), 1e-12), _MIN_SHRINK, 1.0))
        reg = (1.0 - lam) * r
        reg[np.diag_indices_from(reg)] += lam
        # A reading of every sensor keeps the moment matrix positive semi-definite, so the
        # shrunk one has eigenvalues >= lam; pairwise updates of partial readings need not. A
        # Cholesky factorisation of reg - lam/2 I proves the smallest eigenvalue is above lam/2,
        # and then a plain inverse (10x cheaper than eigh) is safe; otherwise the eigenvalues
        # are floored at lam/2.
        floor = 0.5 * lam
        try:
            np.linalg.cholesky(reg - floor * np.eye(len(s)))
            precision = np.linalg.inv(reg)
        except np.linalg.LinAlgError:
            w, v = np.linalg.eigh(reg)
            precision = (v / np.maximum(w, floor)) @ v.T
        # Fold the correlation scaling in, so the precision applies to z directly.
        self.precision = precision / np.multiply.outer(d, d)
