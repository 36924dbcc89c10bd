"""Keep a fault's alert open while the fault lasts: the service-facing floor of a score.

`ShapeNovelty` reports a fault once, at its onset (a record); the readings after it are echoes.
The service's alert policy, though, fires on a run of readings above `alerts.threshold` and
resolves after a run below `alerts.clear_threshold`. `AlertHold` gives each reading a floor:

- `HOLD` (just above a 0.9999 alert threshold) while the recent mean is `hold_z` long-run
  standard deviations from the long-run mean: a level shift or a large drift fires after the
  policy's minimum run, and its alert stays open while it lasts;
- `KEEP` (just above a 0.95 clear threshold, far below any alert threshold, so it can never fire
  an alert) for a window of readings after an alarm, extended by every unusual reading: the calm
  troughs of a load cycle do not resolve an ongoing fault.

Both floors stay below the scores NAB's threshold optimisation picks for this detector (about
0.999997), so they change the service's alerts and not its NAB score.
"""

from __future__ import annotations

import math

# Comparisons instead of the min/max builtins on the per-reading path (as in record_gate.py).
# ruff: noqa: PLR1730

__all__ = ["HOLD", "KEEP", "AlertHold"]

HOLD = 1.0 - 5e-5
KEEP = 0.96
_KEEP_Z = 2.0  # an unusual reading: this many long-run spreads from the long-run mean ...
_KEEP_RARITY = 5.0  # ... or a value whose bin holds under ~0.7 % of the recent readings
_BASE_ALPHA = 0.001  # weight of the long-run EW mean and variance (~1000 readings)


class AlertHold:
    """The long-run baseline of one sensor and the end of its keep window."""

    __slots__ = ("keep_until", "mean", "seen", "var")

    def __init__(self) -> None:
        self.mean = 0.0
        self.var = 0.0
        self.seen = 0
        self.keep_until = 0  # reading index until which open alerts are kept open

    def __getstate__(self) -> tuple:
        return (self.keep_until, self.mean, self.seen, self.var)

    def __setstate__(self, state: tuple) -> None:
        self.keep_until, self.mean, self.seen, self.var = state

    def deviation(self, recent: float) -> float:
        """Distance of `recent` (a mean of recent readings) from the baseline, in spreads."""
        return abs(recent - self.mean) / math.sqrt(self.var + 1e-300)

    def floor(self, recent: float, now: int, hold_z: float) -> float:
        """The least score reading `now` gets (0: no floor)."""
        if self.deviation(recent) >= hold_z:
            return HOLD
        return KEEP if now < self.keep_until else 0.0

    def update(
        self, value: float, recent: float, rarity: float, score: float, now: int, window: int
    ) -> None:
        """Learn reading `now`, which scored `score`; an alarm opens a keep window of `window`
        readings, an unusual reading extends an open one."""
        # "unusual" only matters inside an open keep window: the deviation is computed only there
        if score >= HOLD or (
            now < self.keep_until and (rarity >= _KEEP_RARITY or self.deviation(recent) >= _KEEP_Z)
        ):
            self.keep_until = now + window
        self.seen += 1
        a = 1.0 / self.seen
        if a < _BASE_ALPHA:  # max(_BASE_ALPHA, a), without the builtin's call
            a = _BASE_ALPHA
        delta = value - self.mean
        self.mean += a * delta
        self.var = (1.0 - a) * (self.var + a * delta * delta)
