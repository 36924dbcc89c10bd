"""Has this sensor alarmed on this very picture before? A long memory of past alarms.

The prototype library forgets rare shapes quickly (it keeps the recently matched ones), so a burst
that has happened several times — a sensor's recurring, harmless excursion — looks new every
time, and each time is a false alarm. `AlarmMemory` keeps the pictures of the sensor's last few
alarm-sized surprises, in range units (``(picture - lo) / span``), and tells how familiar a new
picture is: ``sum(exp(-d² / tau²))`` over the remembered pictures, d their root-mean-square
distance. `ShapeNovelty` divides the shape surprise by ``1 + weight * familiarity``.

Only a *very* close match counts (tau about 2 % of the range): on NAB the first detection of a
labelled event and a false alarm are about equally far from earlier alarms in general, but a
repeat of the same excursion is nearly identical to it. The first of a kind meets an empty memory
and keeps its full strength. Pictures are kept in single precision and pickled as raw bytes:
eight of them cost ~300 bytes of checkpoint.
"""

from __future__ import annotations

import numpy as np

__all__ = ["AlarmMemory", "signature"]


class AlarmMemory:
    """The last few alarm pictures of one sensor (oldest first) and when the last was taken."""

    __slots__ = ("last", "pictures")

    def __init__(self, width: int) -> None:
        self.pictures = np.zeros((0, width), np.float32)
        self.last = -(1 << 62)  # reading index of the last remembered alarm

    def __getstate__(self) -> tuple:
        return (self.pictures.shape[1], self.pictures.tobytes(), self.last)

    def __setstate__(self, state: tuple) -> None:
        width, raw, self.last = state
        self.pictures = np.frombuffer(raw, np.float32).reshape(-1, width).copy()

    def familiarity(self, signature: np.ndarray, tau: float) -> float:
        """Sum over remembered pictures of exp(-d² / tau²); 0 for an empty memory (pure)."""
        pictures = self.pictures
        if not len(pictures):
            return 0.0
        diff = pictures - signature
        d2 = np.einsum("ij,ij->i", diff, diff) / signature.shape[0]
        return float(np.exp(d2 / -(tau * tau)).sum())

    def remember(self, signature: np.ndarray, now: int, size: int, gap: int) -> None:
        """Keep `signature` (reading `now`) unless the last one is under `gap` readings old;
        at most `size` pictures."""
        if now - self.last < gap:
            return
        old = len(self.pictures) - size + 1  # how many to drop to make room (if positive)
        kept = self.pictures[max(0, old) :]
        self.pictures = np.concatenate([kept, signature.astype(np.float32)[None, :]])
        self.last = now


def signature(picture: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """`picture` in units of the range [lo, hi] (what `AlarmMemory` compares)."""
    span = hi - lo
    return (picture - lo) / (span if span > 1e-9 else 1e-9)  # noqa: FURB136 - hot path
