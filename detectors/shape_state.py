"""What `ShapeNovelty` learns about one sensor; slots keep the pickle small."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from anomstream.detectors.alert_hold import AlertHold
from anomstream.detectors.prototype_library import PrototypeLibrary
from anomstream.detectors.record_gate import RecordGate
from anomstream.detectors.value_histogram import ValueHistogram

if TYPE_CHECKING:
    from anomstream.detectors.alarm_memory import AlarmMemory
    from anomstream.detectors.coarse_scale import CoarseTrack
    from anomstream.detectors.period_tracker import PeriodTracker
    from anomstream.detectors.spread_channel import SpreadTrack

__all__ = ["RecentWindow", "ShapeState"]

# What the parts added after the first release start as, in `__slots__` order.
_LATER = (None, None, None, 0, None)


class ShapeState:
    """The learned state of one sensor (see `ShapeNovelty` for what each part is for)."""

    __slots__ = (  # noqa: RUF023 - positional pickles: parts added later go last
        "avg",
        "hi",
        "hold",
        "library",
        "lo",
        "maturity",
        "n",
        "records",
        "repeat_share",
        "repeats",
        "ring",
        "values",
        # added later, restored from older checkpoints as "not started" (`_LATER`)
        "coarse",
        "cycle",
        "spread",
        "longest_run",
        "alarms",
    )

    def __init__(self, width: int) -> None:
        self.n = 0
        self.lo = math.inf
        self.hi = -math.inf
        self.ring: list[float] = []  # the last blocks * block_size readings, oldest first
        self.library = PrototypeLibrary(width)
        # EW mean of the novelty, from 0 with a fixed weight (no 1/n start): a young model's
        # novelty is judged mostly in absolute terms until its own history means something.
        self.avg = 0.0
        self.values = ValueHistogram()
        self.repeats = 0  # readings equal to the one before, in a row
        self.repeat_share = 0.0  # EW share of readings equal to the one before
        self.records = RecordGate()
        self.hold = AlertHold()
        self.maturity = 0.0  # EW share of pictures that matched a prototype: 0 for a new model
        self.coarse: CoarseTrack | None = None  # the slow view (`CoarseScale`)
        self.cycle: PeriodTracker | None = None  # the sensor's cycle (`PeriodTracker`)
        self.spread: SpreadTrack | None = None  # its usual erratic-ness (`spread_channel`)
        self.longest_run = 0  # longest completed run of identical readings
        self.alarms: AlarmMemory | None = None  # pictures it alarmed on (`AlarmMemory`)

    def __getstate__(self) -> tuple:
        return tuple(getattr(self, s) for s in self.__slots__)

    def __setstate__(self, state: tuple) -> None:
        # an older checkpoint lacks the parts added later: they start afresh
        missing = (
            _LATER[len(state) - len(self.__slots__) :] if len(state) < len(self.__slots__) else ()
        )
        for name, value in zip(self.__slots__, (*state, *missing)):
            setattr(self, name, value)


class RecentWindow:
    """A sensor's full ring plus the reading being learned, as one contiguous array, and the
    absolute steps between those readings: what the picture and the volatility channel are made
    of, kept up to date with two writes per reading instead of rebuilt from the ring.

    A cache of `ShapeState.ring` and never pickled: it is valid for one state (`ring`, by
    identity) at one reading count (`n`); anything else rebuilds it. Each array is stored twice
    in a row (a "double" ring buffer), so that the newest `size` values are always one slice.
    """

    __slots__ = ("at", "n", "readings", "ring", "step_at", "steps", "stored", "stored_steps")

    def __init__(self, ring: list[float], n: int) -> None:
        self.ring = ring
        self.n = n
        size = len(ring) + 1  # readings in the window; one step fewer
        x = np.fromiter(ring, float, size - 1)
        steps = np.subtract(x[1:], x[:-1])
        np.abs(steps, out=steps)
        # oldest first, behind a placeholder (at 0) that the next reading overwrites
        self.stored = np.zeros(2 * size)
        self.stored[1:size] = self.stored[size + 1 :] = x
        self.stored_steps = np.zeros(2 * (size - 1))
        self.stored_steps[1 : size - 1] = self.stored_steps[size:] = steps
        self.at = self.step_at = 0  # where the oldest value is, and the next one goes
        self.readings = self.steps = x  # the windows: set by `push`

    def fits(self, ring: list[float], n: int) -> bool:
        """Does the cache hold `ring` as it is at reading count `n`?"""
        return self.ring is ring and self.n == n

    def push(self, v: float) -> None:
        """Reading `v`, about to be learned: `readings` becomes `ring + [v]` and `steps` the
        absolute differences between them (the doubles numpy's `abs(x[1:] - x[:-1])` gives),
        both oldest first. Both buffers written inline: this runs for every reading."""
        step = abs(v - self.ring[-1])
        stored, at = self.stored, self.at
        size = len(stored) >> 1
        stored[at] = stored[at + size] = v  # the oldest value, in both copies
        at += 1
        self.readings = stored[at : at + size]
        self.at = at if at < size else 0
        stored, at = self.stored_steps, self.step_at
        size -= 1
        stored[at] = stored[at + size] = step
        at += 1
        self.steps = stored[at : at + size]
        self.step_at = at if at < size else 0
        self.n += 1
