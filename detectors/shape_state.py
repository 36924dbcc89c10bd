"""What `ShapeNovelty` learns about one sensor; slots keep the pickle small."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from detectors.alert_hold import AlertHold
from detectors.prototype_library import PrototypeLibrary
from detectors.record_gate import RecordGate
from detectors.value_histogram import ValueHistogram

if TYPE_CHECKING:
    from detectors.alarm_memory import AlarmMemory
    from detectors.coarse_scale import CoarseTrack
    from detectors.period_tracker import PeriodTracker
    from detectors.spread_channel import SpreadTrack

__all__ = ["ShapeState"]

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
