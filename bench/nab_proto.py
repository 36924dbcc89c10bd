"""Research variant of `anomstream.detectors.shape_novelty.ShapeNovelty` (not shipped).

`RawSurprise` emits the surprise itself, ``s / (s + 1000)`` (invert with ``1000 l / (1 - l)``),
so post-processing ideas (record rules, per-sensor normalisation) can be tried in numpy on one
replay instead of re-running the detector (see `nab_research.py`).
"""

from __future__ import annotations

from typing import Any

from anomstream.detectors.shape_novelty import ShapeNovelty
from anomstream.detectors.shape_state import ShapeState


class RawSurprise(ShapeNovelty):
    @classmethod
    def _unit_test_params(cls) -> Any:
        yield {}

    def _score(self, s: ShapeState, surprise: float, record: bool, recent: float) -> float:
        return surprise / (surprise + 1000.0)
