"""The machine-wide model's per-reading arithmetic, compiled: standardise, residuals, learn.

Why compiled. At five sensors a reading is ~30 numpy calls on arrays of five, each paying
~1 µs of dispatch and a temporary: the machine-wide model cost more per reading than the five
per-sensor models together (measured through the pipeline: ~90 µs a reading, the service at
0.62-0.69 of its per-sensor-only throughput). The same arithmetic as loops compiled by numba
is one call per step and no temporaries. numba rather than hand-written C: it compiles these
plain-Python loops as they read, caches the machine code next to the module (`cache=True`: a
process after the first loads it in milliseconds), and with `NUMBA_DISABLE_JIT=1` the very same
functions run as Python, which is how their logic is debugged and covered.

Each function works on the sensors `idx` of a reading (indices into the model's arrays, in the
reading's order; `arange(p)` for a full reading) and updates the arrays in place. The formulas,
and why they are what they are, are `RelationStats`'s; this module only computes them.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["learn", "residuals", "standardise"]


@njit(cache=True, nogil=True)
def standardise(
    idx: np.ndarray, values: np.ndarray, mean: np.ndarray, var: np.ndarray, n: np.ndarray,
    grace: int, constant: float,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """z-scores of a reading, the mask of the sensors past their own warm-up (enough readings,
    and not constant: variance above `constant` times the squared mean), and whether all are."""
    k = len(idx)
    z = np.empty(k)
    warm = np.empty(k, dtype=np.bool_)
    every = True
    for j in range(k):
        i = idx[j]
        m, v = mean[i], var[i]
        ok = n[i] >= grace and v > constant * m * m
        warm[j] = ok
        every = every and ok
        z[j] = (values[j] - m) / math.sqrt(v if ok else 1.0)
    return z, warm, every


@njit(cache=True, nogil=True)
def residuals(
    precision: np.ndarray, inv_sqrt_diag: np.ndarray, z: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray, float, float]:
    """D² = zᵀΛz, the conditional residuals r = Λz / sqrt(diag Λ), their squares, max |r|
    and the sum of the squares."""
    k = len(z)
    r = np.empty(k)
    r2 = np.empty(k)
    d2 = 0.0
    top = 0.0
    total = 0.0
    for i in range(k):
        y = 0.0
        for j in range(k):
            y += precision[i, j] * z[j]
        d2 += z[i] * y
        r[i] = y * inv_sqrt_diag[i]
        r2[i] = r[i] * r[i]
        total += r2[i]
        if r2[i] > top or r2[i] != r2[i]:
            top = r2[i]
    return d2, r, r2, math.sqrt(top), total


@njit(cache=True, nogil=True)
def learn(
    idx: np.ndarray, values: np.ndarray, z: np.ndarray, warm: np.ndarray, weight: float,
    memory: int, forming: int, clip: float, constant: float, steady: bool,
    n: np.ndarray, c: np.ndarray, mean: np.ndarray, var: np.ndarray, moment: np.ndarray,
) -> bool:
    """Learn one reading in place (see `RelationStats.learn`); returns whether every count is
    now past `memory` (only meaningful for a full reading)."""
    k = len(idx)
    warm_idx = np.empty(k, dtype=np.intp)
    zw = np.empty(k)
    w = 0
    for j in range(k):
        if warm[j]:
            warm_idx[w] = idx[j]
            zw[w] = min(max(z[j], -clip), clip)
            w += 1
    if w >= 2:
        a = np.empty(w)
        if steady:
            for j in range(w):
                a[j] = weight / memory
        else:
            for j in range(w):
                c[warm_idx[j]] += 1
            c_min = c[warm_idx[0]]
            for j in range(1, w):
                c_min = min(c_min, c[warm_idx[j]])
            # Weight 1/c while a sensor's moments form, then 1/memory; while the slowest of them
            # forms (`young`), a sensor still forming learns even an anomalous reading fully.
            young = weight < 1.0 and c_min <= forming
            for j in range(w):
                cj = c[warm_idx[j]]
                full = young and cj <= forming
                a[j] = max(1.0 / cj, 1.0 / memory) * (1.0 if full else weight)
        for p in range(w):
            ip = warm_idx[p]
            for q in range(w):
                iq = warm_idx[q]
                m = moment[ip, iq]
                moment[ip, iq] = m + max(a[p], a[q]) * (zw[p] * zw[q] - m)
    all_past = True
    for j in range(k):
        i = idx[j]
        v = var[i]
        if steady:
            a_n = weight / memory
            bound = clip * math.sqrt(v)
        else:
            if n[i] > forming and v <= constant * mean[i] * mean[i] and values[j] != mean[i]:
                # A sensor constant through its forming readings (a machine first seen idle:
                # current and speed exactly 0) has learned a level but no spread. Bounded by
                # that spread, 0, it would never move again, and never join the relations:
                # it starts its baseline over, as a sensor new to the machine does.
                n[i] = 0
            n[i] += 1
            formed = n[i] > forming
            # An anomalous reading moves a formed baseline only at `weight`.
            a_n = max(1.0 / n[i], 1.0 / memory) * (weight if formed else 1.0)
            bound = clip * math.sqrt(v) if formed else math.inf
            all_past = all_past and n[i] >= memory and c[i] >= memory
        delta = min(max(values[j] - mean[i], -bound), bound)
        mean[i] += a_n * delta
        var[i] = (1.0 - a_n) * (v + a_n * delta * delta)
    return all_past
