"""How erratic a sensor is lately, against how erratic it usually is: the volatility channel.

`ShapeNovelty`'s picture holds block *means*, so a change in variability that leaves the means
alone — an oscillation starting, a key toggling, a bearing starting to chatter, traffic turning
erratic — is nearly invisible to it. The channel measures the spread of each block of the
picture's window (mean absolute first difference) and keeps a *low order statistic* of the
blocks (the second smallest by default): an isolated spike raises one or two blocks and does not
count, variability that fills most of the window does. Its log, in units of the sensor's range
(floored, so a flat sensor is not infinitely calm), is compared with its own exponentially
weighted mean and variance; only an *increase* counts.

Measured on NAB (docs/benchmarks.md): the plain spread mostly fires on spikes, which the shape
term already scores; the order statistic is what makes the channel see something new.
"""

from __future__ import annotations

import math
from itertools import chain

import numpy as np

# Comparisons instead of the min/max builtins on the per-reading path (as in record_gate.py).
# ruff: noqa: FURB136, PLR1730

__all__ = ["SpreadTrack", "log_spread", "steps_spread"]

_add_reduce = np.add.reduce


def log_spread(
    ring: list[float], v: float, blocks: int, size: int, order: int, span: float, floor: float
) -> float | None:
    """log(spread / span + floor) of the window `ring + [v]`; None until `ring` holds
    `blocks * size` readings. The spread is the `order`-th smallest (0-based) block's mean
    absolute first difference."""
    n = len(ring)
    if n < blocks * size:
        return None
    x = np.fromiter(chain(ring, (v,)), float, n + 1)
    steps = np.subtract(x[1:], x[:-1])
    np.abs(steps, out=steps)  # in place: no second temporary array
    return steps_spread(steps, blocks, size, order, span, floor)


def steps_spread(
    steps: np.ndarray, blocks: int, size: int, order: int, span: float, floor: float
) -> float:
    """`log_spread` from the absolute steps of the full window (`blocks * size`, oldest first):
    the detector keeps those up to date as readings come (`RecentWindow`)."""
    sums = _add_reduce(steps.reshape(blocks, size), 1)  # positional: a keyword costs more
    sums.sort()
    spread = sums.item(order) / size
    return math.log(spread / (span if span > 1e-12 else 1e-12) + floor)


class SpreadTrack:
    """EW mean and variance of one sensor's log spread (weight 1/t at first, then `alpha`)."""

    __slots__ = ("mean", "seen", "var")

    def __init__(self) -> None:
        self.mean = 0.0
        self.var = 0.0
        self.seen = 0

    def __getstate__(self) -> tuple:
        return (self.mean, self.seen, self.var)

    def __setstate__(self, state: tuple) -> None:
        self.mean, self.seen, self.var = state

    def z(self, log_spread: float) -> float:
        """Standardised log spread (pure)."""
        return (log_spread - self.mean) / math.sqrt(self.var + 1e-6)

    def learn(self, log_spread: float, alpha: float) -> None:
        self.seen += 1
        a = 1.0 / self.seen
        if a < alpha:
            a = alpha
        delta = log_spread - self.mean
        self.mean += a * delta
        self.var = (1.0 - a) * (self.var + a * delta * delta)
