"""The slow view of a sensor: shape novelty of its block means, for faults that build up slowly.

`ShapeNovelty`'s picture covers about 72 readings. A drift that takes a day to develop, or spikes
that slowly come closer together, never looks new at that scale: every picture resembles the one
before. `CoarseScale` feeds the mean of every `stride` readings to a second, smaller
`ShapeNovelty` (its own prototypes, novelty average, value histogram and maturity: its regimes are
not the fast ones) whose picture spans 8 blocks of 4 means, ~290 readings at the default stride.

A slow fault shows as a *sustained* moderate coarse surprise rather than one peak, so the term
handed back is the sum of the last `steps` coarse surprises (when the latest is non-zero); the
caller adds `weight` times it to the fast surprise on the reading that completes a block.
Measured on NAB (docs/benchmarks.md): a separate model beats one longer picture, which cannot
cover the variety of long shapes with a small library and grows noisy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from anomstream.detectors.shape_novelty import ShapeNovelty
    from anomstream.detectors.shape_state import ShapeState

__all__ = ["CoarseScale", "CoarseTrack"]

# The slow model's own settings: 8 blocks of 4 means; it matures on fewer, slower readings,
# so its grace is short, its histogram forgets sooner and its maturity moves faster.
COARSE_MODEL: dict[str, Any] = {
    "block_size": 4,
    "blocks": 8,
    "grace": 40,
    "rarity_memory": 250,
    "novelty_alpha": 0.01,
    "maturity_alpha": 0.03,
    "stuck_weight": 0.0,  # a stuck sensor is the fast model's business
    "coarse_stride": 0,  # no slower view of the slow view
    "period_weight": 0.0,
    "spread_weight": 0.0,
    "run_weight": 0.0,
    "memory_size": 0,
}


class CoarseTrack:
    """One sensor's slow view: the slow model's state and the block being filled."""

    __slots__ = ("count", "recent", "state", "total")

    def __init__(self, state: ShapeState) -> None:
        self.state = state
        self.total = 0.0  # sum of the readings of the block being filled
        self.count = 0
        self.recent: list[float] = []  # the last `steps` coarse surprises, oldest first

    def __getstate__(self) -> tuple:
        return (self.state, self.total, self.count, self.recent)

    def __setstate__(self, state: tuple) -> None:
        self.state, self.total, self.count, self.recent = state


class CoarseScale:
    """Stateless: scores and learns `CoarseTrack`s with one slow `ShapeNovelty`."""

    def __init__(self, model: ShapeNovelty, stride: int, steps: int) -> None:
        self.model = model
        self.stride = stride
        self.steps = steps

    def track(self) -> CoarseTrack:
        return CoarseTrack(self.model.new_state())

    def surprise(self, track: CoarseTrack, v: float) -> float:
        """The slow term reading `v` would bring (pure): non-zero only when it completes a block."""
        if track.count + 1 < self.stride:
            return 0.0
        latest = self.model.surprise_of(track.state, (track.total + v) / self.stride)
        return self._accumulate(track.recent, latest)

    def learn(self, track: CoarseTrack, v: float) -> float:
        """Learn reading `v`; return what `surprise` gave for it."""
        track.total += v
        track.count += 1
        if track.count < self.stride:
            return 0.0
        mean = track.total / track.count
        track.total, track.count = 0.0, 0
        latest = self.model.learn_surprise(track.state, mean)
        recent = track.recent
        term = self._accumulate(recent, latest)
        recent.append(latest)
        if len(recent) > self.steps:
            del recent[0]
        return term

    def _accumulate(self, recent: list[float], latest: float) -> float:
        if latest <= 0.0:
            return 0.0
        kept = self.steps - 1
        return latest + (sum(recent[-kept:]) if kept > 0 else 0.0)
