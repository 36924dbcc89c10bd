"""A small forgetting histogram of one sensor's values: how rare is the value just read?

Used by `ShapeNovelty` to tell a *new* kind of value from a known one: a load spike that comes
back every few hours has a familiar height, a spike to a height never reached has not.

The grid has a fixed origin (0) and a bin width set from the first readings' range. When the
values spread over too many bins the width doubles (bin k merges into k // 2, exact on this grid),
so the state stays small whatever the signal does. Counts are halved every `memory` readings so
that old regimes fade out.
"""

from __future__ import annotations

import math

__all__ = ["ValueHistogram"]


class ValueHistogram:
    """Counts of values per bin; `rarity` is -log of the smoothed share of the value's bin."""

    __slots__ = ("counts", "seen", "total", "width")

    def __init__(self) -> None:
        self.width = 0.0  # 0 until `start`: no rarity before the grid exists
        self.counts: dict[int, float] = {}
        self.total = 0.0
        self.seen = 0

    def __getstate__(self) -> tuple:
        return (self.width, self.counts, self.total, self.seen)

    def __setstate__(self, state: tuple) -> None:
        self.width, self.counts, self.total, self.seen = state

    def start(self, span: float, bins: int) -> None:
        self.width = max(span, 1e-9) / bins

    def rarity(self, value: float) -> float:
        """0 for the most common kind of value, growing as log(1 / share); pure."""
        if not self.width:
            return 0.0
        b = math.floor(value / self.width)
        get = self.counts.get
        # half weight to the neighbours: a value next to a familiar one is not brand new
        near = get(b, 0.0) + 0.5 * (get(b - 1, 0.0) + get(b + 1, 0.0))
        return -math.log((near + 0.5) / (self.total + 0.5))

    def add(self, value: float, max_bins: int, memory: int) -> None:
        if not self.width:
            return
        b = math.floor(value / self.width)
        self.counts[b] = self.counts.get(b, 0.0) + 1.0
        self.total += 1.0
        self.seen += 1
        if len(self.counts) > max_bins:
            self._coarsen()
        if self.seen % memory == 0:
            self.counts = {k: c / 2 for k, c in self.counts.items() if c > 0.01}
            self.total /= 2

    def _coarsen(self) -> None:
        self.width *= 2.0
        merged: dict[int, float] = {}
        for k, c in self.counts.items():
            merged[k // 2] = merged.get(k // 2, 0.0) + c
        self.counts = merged
