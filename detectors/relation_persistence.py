"""Persistence of a machine's relation residuals: the multivariate EWMA of `RelationModel`.

A single-reading statistic (D², the largest conditional residual) needs each reading of a fault
to be far out on its own; a small shift that lasts stays inside the clean spread reading by
reading and is seen late or never. The multivariate EWMA chart (Lowry, Woodall, Champ & Rigdon
1992, Technometrics 34(1)) averages first, `m_t = λ z_t + (1 - λ) m_{t-1}`, and reads `m`
through the precision Λ. Its residual form, `(Λm)_i / sqrt(Λ_ii)`, is the EWMA `e_i` of sensor
i's conditional residual `r_i = (Λz)_i / sqrt(Λ_ii)` (Λ is fixed between refreshes, and both
are linear), which is what this part keeps: p numbers, updated from the residuals the model has
already computed, so it costs O(p) per reading on top of the O(p²) the reading costs anyway.

The textbook chart scales `m` by `(2 - λ) / λ`, the inverse of the EWMA's variance when readings
are independent. Telemetry is not: a slow process (a thermal lag, a duty cycle, the Tennessee
Eastman plant's levels and temperatures) leaves residuals correlated over many readings, and
the EWMA's real variance is then several times the nominal one, differently for each sensor
(measured: scaled by the nominal factor, the MEWMA statistic's surprisal has a 5 % anchor near
20 nats on clean TEP and 170 on the simulator, instead of 3). So each `e_i` is standardised by
its own running variance `v_i` instead, which folds in whatever autocorrelation that sensor's
residual has; the largest `|e_i| / sqrt(v_i)` gets a nominal surprisal (largest of k normal
residuals) and its own empirical tail, beside the single-reading one.

Deviations enter winsorised at `CLIP` (the bound the moments learn with), so one wild reading
moves `e_i` by at most λ CLIP and its echo fades within a few dozen readings instead of holding
the score up after the single-reading statistics have reported it; a relation break that
persists still drives `e_i` to `CLIP`, about 13 of its clean standard deviations at λ = 0.1.

Known limit (why `RelationModel` leaves this part off by default): on the simulator the
exponential-excess tail fitted at the 5 % anchor still under-states the average's far tail
(clean machines at 1 - 1e-4: 0.06 % of readings on average at λ = 0.1, 0.04 % at 0.2, against
0.02 % for the single-reading statistics), and an average's exceedances come in runs, so the
alert policy's two readings in a row do not filter them.
"""

from __future__ import annotations

import math

import numpy as np

from anomstream.detectors.relation_stats import CLIP
from anomstream.detectors.surprisal_tail import SurprisalTail, max_residual_log_sf

__all__ = ["Persistence"]


class Persistence:
    """EWMA of each sensor's conditional residual (weight `weight`, λ), its running variance
    and the empirical tail of the largest standardised one.

    Parameters
    ----------
    weight
        λ, the EWMA's weight per reading: its memory is about `(2 - λ) / λ` readings.
    memory, grace
        The model's: effective memory of the variances, and readings of a sensor's residual
        before its variance is trusted (it is an exact average of those first).
    tail
        `SurprisalTail` parameters of the largest standardised average's surprisal; its
        `trusted` level is the model's protect level.
    protect_weight
        Learning weight of the variances and the tail while this part's own calibrated tail is
        below that level (see `learn`).
    """

    def __init__(
        self,
        weight: float,
        memory: int,
        grace: int,
        tail: tuple[float, int, int, float],
        protect_weight: float,
    ) -> None:
        if not 0.0 < weight < 1.0:
            raise ValueError(f"persistence weight must be in (0, 1), got {weight}")
        self.weight = weight
        self.memory = memory
        self.grace = grace
        self.protect_weight = protect_weight
        self.e = np.zeros(0)  # EWMA of each sensor's conditional residual
        self.v = np.zeros(0)  # running E[e²] (e's mean is 0: the residuals' is)
        self.n = np.zeros(0, dtype=np.int64)  # residuals learned per sensor
        self.tail = SurprisalTail(*tail)

    @property
    def size(self) -> int:
        return len(self.e)

    def grow(self, p: int) -> None:
        """Room for sensors up to index p - 1; a new sensor's average starts at 0, its mean."""
        extra = p - self.size
        self.e = np.concatenate([self.e, np.zeros(extra)])
        self.v = np.concatenate([self.v, np.zeros(extra)])
        self.n = np.concatenate([self.n, np.zeros(extra, dtype=np.int64)])

    def step(self, idx: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, float | None, np.ndarray]:
        """The averages of sensors `idx` after residuals `r` (pure: `commit` stores them), the
        nominal surprisal of the largest standardised one (None: no sensor's variance formed)
        and the standardised averages (0 where not formed), for attribution."""
        clipped = np.minimum(np.maximum(r, -CLIP), CLIP)
        e = self.e[idx]
        e = e + self.weight * (clipped - e)
        formed = self.n[idx] >= self.grace
        k = int(formed.sum())
        if k == 0:
            return e, None, np.zeros_like(e)
        t = np.where(formed, e, 0.0) / np.sqrt(np.where(formed, self.v[idx], 1.0))
        t_max = float(np.abs(t).max())
        return e, -max_residual_log_sf(t_max, k), t

    def learn(self, idx: np.ndarray, e: np.ndarray, surprisal: float | None) -> None:
        """Store the averages `e` of sensors `idx` after a learned reading, and learn their
        variances and the tail of `surprisal` (from `step`). Sensors without a residual in this
        reading (missing, not yet scored) keep theirs: no news of them.

        Both are learned at `protect_weight` while this part's own tail probability is below
        its `trusted` level, and only then. The model's protection of its baseline also stays
        on through a run of high scores, which suits single readings (a fault's quieter
        readings are still the fault), but an average's clean excursions are runs by
        construction (its readings are correlated over ~1/λ readings): learned at the run's
        reduced weight, the top of its clean distribution would be under-learned, the tail
        would come out too light and flag more, which protects more (measured on one clean
        simulated machine: 1.9 % of its readings at 1 - 1e-4 that way, 0.06 % with this rule).
        A fault this part sees keeps its average above that level, so it is still protected."""
        tail = self.tail
        weight = 1.0
        if surprisal is not None:
            if tail.ready and tail.log_tail(surprisal) <= math.log(tail.trusted):
                weight = self.protect_weight
            tail.update(surprisal, weight)
        self.e[idx] = e
        n = self.n[idx] + 1
        self.n[idx] = n
        v = self.v[idx]
        formed = n > self.grace
        a = np.maximum(1.0 / n, 1.0 / self.memory) * np.where(formed, weight, 1.0)
        # Winsorised like the moments: a fault's average moves the variance a bounded step.
        e2 = np.minimum(e * e, np.where(formed, CLIP * CLIP * v, math.inf))
        self.v[idx] = v + a * (e2 - v)
