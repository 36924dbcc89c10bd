"""Is this the most surprising reading in a while? A constant-size sliding maximum.

One fault makes many surprising readings in a row; only the most surprising of them is news.
`RecordGate` remembers the largest surprise of each of the last `blocks` blocks of readings, so
"larger than everything in the last ~N readings" costs `blocks` floats instead of N, whatever N
is. `ShapeNovelty` gives a record its full score and deflates the rest (echoes).
"""

from __future__ import annotations

# Comparisons instead of the min/max builtins on the per-reading path: a builtin call costs about
# as much as the arithmetic around it, and `a if a < b else b` gives exactly min(b, a)'s result.
# ruff: noqa: FURB136, PLR1730

__all__ = ["RecordGate"]


class RecordGate:
    """Maxima of the last few blocks of surprises; `bar` is what a record must beat."""

    __slots__ = ("current", "maxima", "older", "seen")

    def __init__(self) -> None:
        self.maxima: list[float] = []  # one per completed block, oldest first
        self.older = 0.0  # their maximum (0 for none): changes once a block, read every reading
        self.current = 0.0  # maximum of the block being filled
        self.seen = 0

    def __getstate__(self) -> tuple:
        return (self.maxima, self.current, self.seen)

    def __setstate__(self, state: tuple) -> None:
        # checkpoints written while an alarm raised the bar (a refractory period) hold two more
        # fields: dropped, the bar is the plain maximum again
        self.maxima, self.current, self.seen = state[:3]
        self.older = max(self.maxima, default=0.0)  # not pickled: follows from `maxima`

    def bar(self) -> float:
        older = self.older
        return older if older > self.current else self.current  # max(current, older)

    def add(self, surprise: float, window: int, blocks: int = 10) -> None:
        """Remember `surprise`; the bar covers the last `window` readings (to a block)."""
        if surprise > self.current:  # max(self.current, surprise)
            self.current = surprise
        self.seen += 1
        every = window // blocks
        if self.seen % (every if every > 1 else 1) == 0:  # max(window // blocks, 1)
            self.maxima.append(self.current)
            self.current = 0.0
            if len(self.maxima) > blocks:
                del self.maxima[0]
            self.older = max(self.maxima, default=0.0)
