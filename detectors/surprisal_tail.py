"""Self-calibrating tail probability of a surprisal, for scores that mean "1 in N clean readings".

Also the nominal log tails the surprisals start from (normal, chi-square, largest of k normal
residuals), computed in log space so nothing saturates or underflows far out in the tail.

A multivariate statistic (a Mahalanobis distance, the largest standardised residual) has a
nominal tail probability `p` under "Gaussian and independent readings". Its surprisal
`e = -ln p` is then exactly Exp(1) distributed, whatever the dimension. Real telemetry is
heavy-tailed and autocorrelated, and a covariance estimated online is itself noisy, so the real
surprisals of clean readings have a longer tail than Exp(1): a nominal 1-in-10,000 reading
happens far more often.

`SurprisalTail` fixes that empirically with the peaks-over-threshold model of extreme-value
theory, in its exponential (shape 0) form, on the surprisal scale: above the running
(1 - `tail_share`) quantile `u` of the surprisals, the excess is modelled as exponential with
the running mean excess `beta`, so

    P(E > e) = tail_share * exp(-(e - u) / beta).

When the nominal model is right, `u = ln(1 / tail_share)` and `beta = 1`, and this gives back the
nominal p exactly; heavier tails show up as a larger `u` or `beta` and are corrected. The
exponential-excess form is the limit law of the tails of chi-square-like statistics, which is
why it extrapolates from a 5 % anchor to the 0.01 % tail better than a normal fit of the raw
statistic would.
"""

from __future__ import annotations

import functools
import math

__all__ = ["SurprisalTail", "chi2_log_sf", "log_normal_sf", "max_residual_log_sf"]

_LOG_HALF_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)


def log_normal_sf(z: float) -> float:
    """ln P(Z > z) for a standard normal Z, accurate far out in the tail (no underflow)."""
    if z < 30.0:
        # erfc keeps full relative precision in the tail; 1 - erf would lose it above z ~ 8.
        return math.log(0.5 * math.erfc(z / math.sqrt(2.0)))
    # Mills-ratio asymptotic series; erfc underflows to 0 near z = 38.
    inv2 = 1.0 / (z * z)
    return -0.5 * z * z - math.log(z) - _LOG_HALF_SQRT_2PI + math.log1p(-inv2 + 3.0 * inv2 * inv2)


def chi2_log_sf(x: float, k: int) -> float:
    """ln P(χ²_k > x); exact for k <= 2, Wilson–Hilferty above: ln p within 4 % down to
    p = 1e-4 and 13 % at 1e-12 (k = 3; less for more sensors). The empirical tail calibration
    absorbs that; beyond 1e-4 only the order of magnitude matters."""
    if k == 1:
        return _LOG_2 + log_normal_sf(math.sqrt(x))
    if k == 2:
        return -0.5 * x
    s = 2.0 / (9.0 * k)
    return log_normal_sf(((x / k) ** (1.0 / 3.0) - (1.0 - s)) / math.sqrt(s))


def max_residual_log_sf(r_max: float, k: int) -> float:
    """ln P(max of k independent |N(0,1)| > r_max) (Šidák)."""
    log_p1 = _LOG_2 + log_normal_sf(r_max)
    if log_p1 < -18.0:  # Bonferroni's k * p1 is within 1e-6 relative here; exp() may underflow
        return math.log(k) + log_p1
    return math.log(-math.expm1(k * math.log1p(-math.exp(log_p1))))


@functools.cache
def _drought(tail_share: float, chance: float) -> int:
    """Readings a calibrated anchor at `tail_share` goes uncrossed with probability `chance`
    (asked on every reading: computed once per share)."""
    return math.ceil(math.log(chance) / math.log1p(-tail_share))


class SurprisalTail:
    """Running exponential-excess model of the upper tail of surprisals `-ln p_nominal`.

    Parameters
    ----------
    tail_share
        Share of readings above the anchor quantile `u`. 5 %: enough exceedances to estimate the
        mean excess from a few hundred readings (25 in 500), yet far enough out that the
        exponential-excess law holds.
    memory
        Effective memory in readings of the quantile and the mean excess (EW weight 1/memory).
    warmup
        Surprisals collected before the first estimate, which is the batch quantile and mean
        excess of these; no calibrated value is given before (`ready` is False).
    trusted
        Smallest tail probability a surprisal may have to be learned into the mean excess.
        Rarer ones are what the model exists to report (faults): an online estimate that
        learns them inflates its own tail within a few dozen readings of a fault and then calls
        the fault normal. So the mean excess is estimated from exceedances below that level,
        corrected for the truncation (exact for the exponential law), and is unbiased on clean
        data, while a fault leaves it alone. The quantile still counts every reading (its step
        is bounded), so a lasting change of regime is learned eventually.

    Recalibration. The first estimate comes from a young model's surprisals, and a young model
    has often not yet seen its machine's whole operating range (a duty cycle longer than the
    warm-up, a machine that starts idle): its surprisals are then far larger than the settled
    model's, the anchor lands dozens of units too high, and the bounded quantile step needs tens
    of thousands of readings to come down, while every reading scores 0. Measured in the
    simulator: the machine model of 5 of 12 machines scored 0 on over a third of its readings
    thousands of readings in, anchors at 12-42 where a calibrated one sits near 3, and missed
    relation faults there. A calibrated anchor is crossed by `tail_share` of the readings; going
    `DROUGHT` readings without one crossing has a chance below 10⁻⁶ (270 readings at 5 %), so
    the anchor is too high: the tail calibrates again, as at the start, from the next as many
    readings as the drought (a drought says the surprisals move slowly: 100 readings of a
    240-reading duty cycle, its idle part, calibrated an anchor too low for the loaded part),
    and scores with the old estimate meanwhile. Only a drought restarts it: a fault crosses
    the anchor more often, not less, and must never recalibrate the tail away.
    """

    __slots__ = (
        "_beta", "_buffer", "_n", "_u", "memory", "tail_share", "trusted", "warmup", "_dry",
    )

    # Below this mean excess the extrapolated tail would be steeper than a Gaussian-nominal
    # statistic's own (beta = 1) by more than 2x: that only happens from too few exceedances
    # (quantised or near-constant sensors), so the floor keeps a lucky quiet start from turning
    # ordinary readings into 1-in-10,000 ones.
    MIN_BETA = 0.5
    # Chance that a calibrated anchor goes uncrossed for the readings that restart the
    # calibration (see "Recalibration"): small enough that clean data practically never does.
    DROUGHT = 1e-6

    def __init__(
        self, tail_share: float = 0.05, memory: int = 2000, warmup: int = 100, trusted: float = 1e-3
    ) -> None:
        if not 0.0 < tail_share < 0.5:
            raise ValueError(f"tail_share must be in (0, 0.5), got {tail_share}")
        self.tail_share = tail_share
        self.memory = memory
        self.warmup = warmup
        self.trusted = trusted
        self._buffer: list[float] | None = []  # surprisals collected for a (re)calibration
        self._n = 0  # readings learned by the estimate; 0: none yet
        self._u = math.log(1.0 / tail_share)
        self._beta = 1.0
        self._dry = 0  # readings since a surprisal last crossed the anchor `u`

    def __getstate__(self) -> tuple:
        return tuple(getattr(self, s) for s in self.__slots__)

    def __setstate__(self, state: tuple) -> None:
        # A state from before recalibration existed (7 slots, no `_dry`) restores with none due.
        self._dry = 0
        for name, value in zip(self.__slots__, state):
            setattr(self, name, value)

    @property
    def ready(self) -> bool:
        """Is there an estimate (the first calibration is done)?"""
        return self._n > 0

    @property
    def drought(self) -> int:
        """Readings without an anchor crossing that restart the calibration."""
        return _drought(self.tail_share, self.DROUGHT)

    def log_tail(self, e: float) -> float:
        """ln P(E > e) under the current model (<= 0); meaningful once `ready`."""
        return min(0.0, math.log(self.tail_share) - (e - self._u) / self._beta)

    def update(self, e: float, weight: float = 1.0) -> None:
        """Learn one surprisal with `weight` in (0, 1] (down-weighted while a fault is scored)."""
        buffer = self._buffer
        if buffer is not None:
            buffer.append(e)
            if len(buffer) >= (self.drought if self.ready else self.warmup):
                self._start(buffer)
                return
            if not self.ready:
                return
        q = self.tail_share
        # 1/n weights until `memory` readings: the first estimate (from the model's own warm-up,
        # when its correlations were still noisy) fades like any early reading of an average.
        self._n += 1
        a = weight / min(self._n, self.memory)
        above = e > self._u
        self._dry = 0 if above else self._dry + 1
        if self._dry >= self.drought and buffer is None:
            self._buffer, self._dry = [], 0  # the anchor is too high: calibrate again
        # Stochastic-approximation quantile: the expected step is 0 where P(E > u) = q; steps are
        # in units of beta so the tracker is scale free.
        self._u += a * self._beta * ((1.0 / q if above else 0.0) - 1.0)
        if above:
            beta = self._beta
            excess = e - self._u
            cap = beta * math.log(q / self.trusted)  # the excess at tail probability `trusted`
            if excess <= cap:
                # E[X | X <= c] = beta - c / (exp(c / beta) - 1) for X ~ Exp(beta): add the
                # truncation back so the running mean targets beta itself. Exceedances arrive
                # at rate q, so their own EW weight is a / q.
                target = excess + cap / math.expm1(cap / beta)
                self._beta = max(beta + min(1.0, a / q) * (target - beta), self.MIN_BETA)

    def _start(self, buffer: list[float]) -> None:
        ordered = sorted(buffer)
        k = max(1, round(self.tail_share * len(ordered)))
        self._u = ordered[-k - 1]
        excess = [v - self._u for v in ordered[-k:]]
        self._beta = max(sum(excess) / len(excess), self.MIN_BETA)
        self._buffer = None
        self._n = len(ordered)
        self._dry = 0
