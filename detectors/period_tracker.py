"""The sensor's own cycle — a load cycle, a shift, a day — learned from its values alone, and how
far the latest readings are from what the same phase of the cycle looked like one period ago.

There are no timestamps to lean on: readings arrive at an unknown, roughly regular rate, and the
cycle is whatever repeats in them. `PeriodTracker` keeps a bounded history of block means (one
mean per `block` readings, the last `history` of them) and, every `every` blocks, takes the
period as the peak of the history's autocorrelation, computed by FFT (the first estimate comes
after `every` blocks, from the history so far). A reading that is normal in itself can then still
be wrong *for its phase*: the peak value where the trough should be.

Choices that are not obvious:

- The history is compressed with ``asinh((x - median) / mean absolute deviation)`` before the
  autocorrelation. On raw values a few bursts dominate the sum of products and the "period" is
  the spacing of the bursts; ranks tame the bursts but turn long runs of tied values (a sensor
  idling at one reading) into false trends. asinh is linear near the median and logarithmic in
  the tails.
- A peak must be *prominent*: at least `prominence` above the lowest autocorrelation at any
  shorter lag. A smooth series has an autocorrelation that decays slowly from 1 with small bumps
  on the way down; without the dip those bumps at small lags win.
- Of the prominent peaks, the first one within `peak_ratio` of the highest is the period: the
  autocorrelation at twice the period is nearly as high as at the period itself.
- The deviation is measured against the *range* of the same-phase block means one period ago,
  widened by `tolerance` blocks on each side, and is 0 inside it. The phase is only known to a
  block, and the cycle drifts: against the single same-phase value a steep edge (a shift
  starting) misaligned by one block gives a huge z every cycle.
- The unit of the deviation is the typical distance between the recent mean and the same-phase
  mean one period ago (exponentially weighted with weight `alpha`), so z = 10 means "ten times
  further outside the usual range than cycles usually differ from each other".

State: about 1.2 KB pickled (the history is stored as float32).
"""

from __future__ import annotations

from array import array

import numpy as np

# Comparisons instead of the min/max builtins on the per-reading path: a builtin call costs about
# as much as the arithmetic around it, and the loop keeps their results exactly (NaN included).
# ruff: noqa: PLR1730

__all__ = ["PeriodTracker"]

_TINY = 1e-12  # keeps divisions finite for a constant history or a perfectly repeating cycle
_MIN_PEAK = 0.1  # a peak autocorrelation at or below this is no period at all


class PeriodTracker:
    """The period of one sensor's block means, and each reading's distance from its phase.

    Parameters
    ----------
    block
        Readings per block mean; the phase is known to one block.
    history
        Block means kept for the autocorrelation: periods up to about half of it can be found.
    every
        Blocks between two estimates of the period (an FFT of the history each time).
    tolerance
        Blocks on either side of the same phase one period ago whose means still count as "the
        same phase"; at most `min_lag`, which keeps the compared blocks inside the history.
    min_lag
        Shortest lag (in blocks) considered; the period is longer than this.
    peak_ratio
        The period is the first prominent autocorrelation peak at least this share of the highest.
    prominence
        How far a peak must rise above the lowest autocorrelation at any shorter lag.
    alpha
        Weight of the exponentially weighted mean of the same-phase deviation (z's unit).

    Examples
    --------
    >>> import math
    >>> t = PeriodTracker()
    >>> day = [10 + 5 * math.sin(2 * math.pi * i / 288) for i in range(288)]
    >>> for v in day * 30:
    ...     t.update(v)
    >>> t.period, t.strength > 0.9  # in blocks of 4 readings
    (72, True)
    >>> z, strength = t.deviation(day[0])
    >>> z < 1.0
    True
    >>> z, strength = t.deviation(day[144] + 10)  # far above the same phase a period ago
    >>> z > 10.0
    True
    """

    __slots__ = (
        "alpha",
        "block",
        "blocks",
        "compared",
        "count",
        "every",
        "history",
        "mad",
        "means",
        "min_lag",
        "peak_ratio",
        "period",
        "prominence",
        "ring",
        "strength",
        "tolerance",
        "total",
    )

    def __init__(
        self,
        *,
        block: int = 4,
        history: int = 256,
        every: int = 64,
        tolerance: int = 1,
        min_lag: int = 4,
        peak_ratio: float = 0.95,
        prominence: float = 0.3,
        alpha: float = 0.005,
    ) -> None:
        if not 0 <= tolerance <= min_lag:
            raise ValueError(f"tolerance must be in [0, min_lag={min_lag}], not {tolerance}")
        self.block = block
        self.history = history
        self.every = every
        self.tolerance = tolerance
        self.min_lag = min_lag
        self.peak_ratio = peak_ratio
        self.prominence = prominence
        self.alpha = alpha
        self.means = array("f")  # completed block means, oldest first; float32 halves the pickle
        self.ring = array("f")  # the last `block` readings, oldest first
        self.total = 0.0  # sum of the readings of the block being filled ...
        self.count = 0  # ... and how many there are
        self.blocks = 0  # blocks completed, ever: estimates are due every `every`
        self.period = 0  # in blocks; 0: no cycle found (yet)
        self.strength = 0.0  # autocorrelation at the period
        self.mad = 0.0  # EW mean |recent mean - same-phase mean one period ago|
        self.compared = 0  # readings compared with one period ago (the first sets `mad`)

    def __getstate__(self) -> tuple:
        return tuple(getattr(self, s) for s in self.__slots__)

    def __setstate__(self, state: tuple) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)

    def deviation(self, v: float) -> tuple[float, float]:
        """(z, strength) for reading `v`, from the state before it; pure.

        z: how far the mean of the last `block` readings (`v` included) is outside the range of
        the same phase one period ago, in units of the typical same-phase deviation; 0 while no
        period is known. strength: the autocorrelation at the period as `update(v)` leaves it (a
        reading that completes every `every`-th block re-estimates the period).
        """
        z = 0.0
        if self.period and self.compared:  # the first comparison only sets the unit
            z = self._gaps(v)[0] / (self.mad + _TINY)
        strength = self.strength
        if self.count + 1 == self.block and (self.blocks + 1) % self.every == 0:
            means = self.means[:]  # the history `update(v)` will estimate from, as a copy
            self._add_mean(means, (self.total + v) / self.block)
            if len(means) >= 4 * self.min_lag:
                strength = self._estimate(means)[1]
        return z, strength

    def update(self, v: float) -> None:
        """Learn reading `v`."""
        self.learn(v)

    def learn(self, v: float) -> tuple[float, float]:
        """Learn reading `v`; return what `deviation(v)` gave for it. One pass: the gaps to one
        period ago and a due estimate of the period are computed once, not once per method."""
        z = 0.0
        if self.period:
            outside, raw = self._gaps(v)
            mad = self.mad
            if self.compared:  # the first comparison only sets the unit
                z = outside / (mad + _TINY)
                self.mad = mad + self.alpha * (raw - mad)
            else:
                self.mad = raw
            self.compared += 1
        ring = self.ring
        ring.append(v)
        if len(ring) > self.block:
            del ring[0]
        self.total += v
        self.count += 1
        if self.count == self.block:
            self._add_mean(self.means, self.total / self.block)
            self.total = 0.0
            self.count = 0
            self.blocks += 1
            if self.blocks % self.every == 0 and len(self.means) >= 4 * self.min_lag:
                self.period, self.strength = self._estimate(self.means)
        # `deviation`'s strength is the estimate this reading makes, if it makes one
        return z, self.strength

    def _add_mean(self, means: array, mean: float) -> None:
        means.append(mean)
        if len(means) > self.history:
            del means[0]

    def _gaps(self, v: float) -> tuple[float, float]:
        """(outside, raw) for the window of the last `block` readings ending with `v`.

        outside: distance of the window's mean from the range of the same-phase block means one
        period ago (± `tolerance` blocks), 0 inside it; raw: distance from the same-phase mean
        itself. Needs a period: the ring is full by then, and the compared blocks lie inside the
        history (the period is at most half the history it was found in, the history never
        shrinks, and `tolerance` <= `min_lag` < period).
        """
        block = self.block
        window = self.ring[1:]
        window.append(v)  # rounded to float32 like the readings before it
        recent = sum(window) / block
        # The window holds the first `phase` readings of the block being filled and the last
        # `block - phase` of the block before (phase 0: `v` completes a block, the window is it).
        # One period ago those were blocks `before` and `after` of the history.
        phase = (self.count + 1) % block
        means = self.means
        after = len(means) - self.period
        before = after - 1 if phase else after
        tol = self.tolerance
        lo = hi = means[before - tol]
        for m in means[before - tol + 1 : after + tol + 1]:  # min and max, as the builtins do
            if m < lo:
                lo = m
            if m > hi:
                hi = m
        if recent > hi:
            outside = recent - hi
        elif recent < lo:
            outside = lo - recent
        else:
            outside = 0.0
        if phase:
            same = ((block - phase) * means[before] + phase * means[after]) / block
        else:
            same = means[before]
        return outside, abs(recent - same)

    def _estimate(self, means: array) -> tuple[int, float]:
        """(period in blocks, autocorrelation there) of `means`; (0, 0.0) if it has no cycle."""
        x = np.frombuffer(means, dtype=np.float32).astype(float)
        n = len(x)
        d = x - np.median(x)
        x = np.arcsinh(d / (np.abs(d).mean() + _TINY))
        x = x - x.mean()
        var = float(x @ x) / n
        if var <= _TINY:
            return 0, 0.0
        # zero-padded to 2n: the linear autocorrelation, not the circular one; each lag is
        # normalised by its own number of products, so long lags are not penalised
        f = np.fft.rfft(x, 2 * n)
        lags = n // 2 + 1
        ac = np.fft.irfft(f * np.conj(f))[:lags]
        ac = ac / (var * (n - np.arange(lags)))
        lo = self.min_lag
        seg = ac[lo:]
        peaks = np.flatnonzero((seg[1:-1] >= seg[:-2]) & (seg[1:-1] >= seg[2:])) + 1
        dip = np.minimum.accumulate(ac)[lo:]  # lowest autocorrelation up to each lag
        peaks = peaks[seg[peaks] - dip[peaks] >= self.prominence]
        if len(peaks) == 0:
            return 0, 0.0
        heights = seg[peaks]
        best = heights.max()
        if best <= _MIN_PEAK:
            return 0, 0.0
        j = peaks[np.argmax(heights >= self.peak_ratio * best)]  # the first one high enough
        return int(j + lo), float(seg[j])
