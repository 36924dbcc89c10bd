"""Is this the most surprising reading in a while? A constant-size sliding maximum, plus a
refractory period after an alarm.

One fault makes many surprising readings in a row, and an operator (like the NAB score, which
charges every extra alarm) wants one alarm for it. `RecordGate` remembers the largest surprise of
each of the last `blocks` blocks of readings, so "larger than everything in the last ~N readings"
costs `blocks` floats instead of N, whatever N is.

A growing burst (97, 161, 187, 214, 378 ...) makes a new record at each step. After an alarm-sized
record, the next `refractory` readings must beat it by a factor (`escalation`) to count as a new
alarm: a fault that gets much worse still alarms, the same fault climbing does not.
"""

from __future__ import annotations

# Comparisons instead of the min/max builtins on the per-reading path: a builtin call costs about
# as much as the arithmetic around it, and `a if a < b else b` gives exactly min(b, a)'s result.
# ruff: noqa: FURB136, PLR1730

__all__ = ["RecordGate"]


class RecordGate:
    """Maxima of the last few blocks of surprises; `bar` is what a record must beat."""

    __slots__ = ("alarm", "alarm_until", "current", "maxima", "older", "seen")

    def __init__(self) -> None:
        self.maxima: list[float] = []  # one per completed block, oldest first
        self.older = 0.0  # their maximum (0 for none): changes once a block, read every reading
        self.current = 0.0  # maximum of the block being filled
        self.seen = 0
        self.alarm = 0.0  # escalated bar after the last alarm-sized record ...
        self.alarm_until = 0  # ... valid until this reading count

    def __getstate__(self) -> tuple:
        return (self.maxima, self.current, self.seen, self.alarm, self.alarm_until)

    def __setstate__(self, state: tuple) -> None:
        # checkpoints written before the refractory period existed hold three fields
        self.maxima, self.current, self.seen, self.alarm, self.alarm_until = (*state, 0.0, 0)[:5]
        self.older = max(self.maxima, default=0.0)  # not pickled: follows from `maxima`

    def bar(self) -> float:
        older = self.older
        bar = older if older > self.current else self.current  # max(current, older)
        if self.seen < self.alarm_until and self.alarm > bar:
            return self.alarm
        return bar

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

    def alarmed(self, surprise: float, refractory: int, escalation: float) -> None:
        """A record of `surprise` was an alarm: raise the bar for the next `refractory` readings."""
        self.alarm = escalation * surprise
        self.alarm_until = self.seen + refractory
