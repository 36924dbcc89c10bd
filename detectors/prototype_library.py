"""A small library of prototype vectors learned online (nearest prototype, adaptive-resonance style).

`ShapeNovelty` keeps one per sensor, of pictures of the recent trajectory. A new vector either
refines its nearest prototype (when close enough: the "resonance" of ART) or becomes a prototype
itself, evicting the one matched least recently once the library is full. Forgetting by recency
keeps the library about the sensor's current regimes, and its size bounds the state.

Prototypes are stored in single precision: they are running averages of noisy pictures, so the
digits beyond 7 carry nothing, and it halves the largest part of a sensor's checkpoint.
"""

from __future__ import annotations

import math

import numpy as np

# The C function `np.einsum` itself calls (without `optimize`): the same sums without ~0.5 us of
# Python wrapper per reading. It is private numpy API, so any numpy without it gets the public one.
try:
    from numpy._core.multiarray import c_einsum as _einsum
except ImportError:  # pragma: no cover - depends on the numpy version
    _einsum = np.einsum

__all__ = ["PrototypeLibrary"]


class PrototypeLibrary:
    """Prototypes as rows of one array, with the reading index each was last matched at."""

    __slots__ = ("last_used", "protos")

    def __init__(self, width: int) -> None:
        self.protos = np.zeros((0, width), np.float32)
        self.last_used: list[int] = []

    def __getstate__(self) -> tuple:
        return (self.protos, self.last_used)

    def __setstate__(self, state: tuple) -> None:
        self.protos, self.last_used = state

    def nearest(self, vector: np.ndarray) -> tuple[float, int]:
        """(root-mean-square distance to the nearest prototype, its index); (inf, -1) if empty."""
        protos = self.protos
        if not len(protos):
            return math.inf, -1
        diff = protos - vector
        d2 = _einsum("ij,ij->i", diff, diff)
        # array methods and `item`: the same values as `np.argmin` and `d2[j]`, without the
        # wrappers (this runs once per reading)
        j = int(d2.argmin())
        return math.sqrt(d2.item(j) / vector.shape[0]), j

    def learn(
        self, vector: np.ndarray, matched: int, learning_rate: float, capacity: int, now: int
    ) -> None:
        """Move prototype `matched` towards `vector`, or store `vector` when `matched` is -1."""
        if matched >= 0:
            row = self.protos[matched]  # a view: updated in place
            step = vector - row
            step *= learning_rate  # in place: no second temporary array
            row += step
            self.last_used[matched] = now
        elif len(self.protos) < capacity:
            self.protos = np.vstack([self.protos, vector.astype(np.float32)])
            self.last_used.append(now)
        else:
            stale = min(range(len(self.last_used)), key=self.last_used.__getitem__)
            self.protos[stale] = vector
            self.last_used[stale] = now
