"""Does this sensor's level persist away from its long-run baseline? A calibrated tail probability.

`ShapeNovelty` reports a fault's *onset* as a record; a level shift or a drift then goes on with
readings whose shapes are no longer new. That the fault persists is evidence in its own right,
which the alert policy needs (to keep an alert open while the fault lasts), so it is given on
the scale of every other score, a tail probability, and the policy's thresholds alone decide
what it means:

``erfc(z / sqrt(2))``, the two-sided normal tail of ``z``, the distance of the median of the recent
readings from the long-run EW baseline in long-run standard deviations (the persistence score
is one minus it). It is deliberately conservative: the mean of k readings is measured against
the spread of *single* readings (for independent readings its own spread is sqrt(k) times
smaller), so strongly autocorrelated sensors, for which the two are alike, are not over-alarmed.

The baseline forgets with a fixed weight (`_BASE_ALPHA`): a new level becomes the normal within
a few thousand readings, so a persistence alert always ends.
"""

from __future__ import annotations

import math

__all__ = ["AlertHold"]

# ~1000 readings of memory: longer than the fast shape picture (72 readings) and the slow view
# (~290), so what they call "recent" is judged against a baseline they do not define; short
# enough that a lasting new level is the normal after a few thousand readings on any sensor.
_BASE_ALPHA = 0.001
_ROOT2 = math.sqrt(2.0)


class AlertHold:
    """The long-run EW mean and variance of one sensor's readings."""

    __slots__ = ("mean", "seen", "var")

    def __init__(self) -> None:
        self.mean = 0.0
        self.var = 0.0
        self.seen = 0

    def __getstate__(self) -> tuple:
        return (self.mean, self.seen, self.var)

    def __setstate__(self, state: tuple) -> None:
        # checkpoints written while the detector kept a "keep window" hold its end first
        self.mean, self.seen, self.var = state[-3:]

    def deviation(self, recent: float) -> float:
        """Distance of `recent` (a mean of recent readings) from the baseline, in spreads."""
        return abs(recent - self.mean) / math.sqrt(self.var + 1e-300)

    def tail(self, recent: float) -> float:
        """Two-sided normal tail of `deviation(recent)`: one minus the persistence score."""
        return math.erfc(self.deviation(recent) / _ROOT2)

    def update(self, value: float) -> None:
        """Learn one reading."""
        self.seen += 1
        a = 1.0 / self.seen
        if a < _BASE_ALPHA:  # max(_BASE_ALPHA, a), without the builtin's call
            a = _BASE_ALPHA
        delta = value - self.mean
        self.mean += a * delta
        self.var = (1.0 - a) * (self.var + a * delta * delta)
