"""The compiled machine-wide arithmetic (`relation_kernel`) against the numpy formulas it replaced.

The reference below is the vectorised numpy code `RelationStats` ran before the kernel, kept
here as the specification: through young counts, steady counts, anomalous (down-weighted)
readings, partial readings and cold sensors, both must leave the same means, variances,
counts and moment matrix, and give the same z-scores and residuals.
"""

from __future__ import annotations

import numpy as np
import pytest

from anomstream.detectors import relation_kernel as kernel
from anomstream.detectors.relation_stats import CLIP, RelationStats

_CONSTANT = 1e-12


def reference_z(stats: RelationStats, sel, values):
    mean, var = stats.mean[sel], stats.var[sel]
    warm = (stats.n[sel] >= stats.grace) & (var > _CONSTANT * mean * mean)
    return (values - mean) / np.sqrt(np.where(warm, var, 1.0)), warm


def reference_learn(stats: RelationStats, sel, values, z, warm, weight) -> None:
    memory, forming = stats.memory, stats.forming
    everyone = isinstance(sel, slice) and bool(warm.all())
    steady = everyone and stats.steady
    if everyone or warm.sum() >= 2:
        w_sel = sel if everyone else np.arange(stats.size)[sel][warm]
        zw = np.clip(z if everyone else z[warm], -CLIP, CLIP)
        if steady:
            a_pair = weight / memory
        else:
            c = stats.c[w_sel] + 1
            stats.c[w_sel] = c
            young = weight < 1.0 and int(c.min()) <= forming
            w = np.where(c > forming, weight, 1.0) if young else weight
            a = np.maximum(1.0 / c, 1.0 / memory) * w
            a_pair = np.maximum.outer(a, a)
        block = np.ix_(np.arange(stats.size)[w_sel], np.arange(stats.size)[w_sel])
        m = stats.moment[block]
        stats.moment[block] = m + a_pair * (np.multiply.outer(zw, zw) - m)
    mean, var = stats.mean[sel], stats.var[sel]
    if steady:
        a_n = weight / memory
        bound = CLIP * np.sqrt(var)
    else:
        n = stats.n[sel] + 1
        stats.n[sel] = n
        formed = n > forming
        a_n = np.maximum(1.0 / n, 1.0 / memory) * np.where(formed, weight, 1.0)
        bound = np.where(formed, CLIP * np.sqrt(var), np.inf)
        if everyone:
            stats.steady = bool(n.min() >= memory and stats.c.min() >= memory)
    if not steady:  # a constant sensor that moves starts over (the kernel's one addition)
        moved = (n - 1 > forming) & (var <= _CONSTANT * mean * mean) & (values != mean)
        if moved.any():
            n = np.where(moved, 1, n)
            stats.n[sel] = n
            a_n = np.where(moved, 1.0, a_n)
            bound = np.where(moved, np.inf, bound)
    delta = np.clip(values - mean, -bound, bound)
    stats.mean[sel] = mean + a_n * delta
    stats.var[sel] = (1.0 - a_n) * (var + a_n * delta * delta)


def _twins(p: int) -> tuple[RelationStats, RelationStats]:
    a, b = RelationStats(memory=60, grace=5), RelationStats(memory=60, grace=5)
    a.grow(p)
    b.grow(p)
    return a, b


def _assert_same(a: RelationStats, b: RelationStats) -> None:
    for name in ("n", "c", "mean", "var", "moment"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-12, atol=1e-15, err_msg=name)
    assert a.steady == b.steady


@pytest.mark.parametrize(("seed", "constant"), [(0, False), (1, False), (2, True)])
def test_the_kernel_learns_what_the_numpy_formulas_learned(seed: int, constant: bool) -> None:
    rng = np.random.default_rng(seed)
    p = 6  # forming = 15 readings (memory 60)
    ours, ref = _twins(p)
    steady_seen = False
    for t in range(400):
        values = rng.normal(size=p) * np.arange(1, p + 1) + 10.0
        if constant:  # a sensor constant through its forming readings, then live
            values[5] = 3.0 if t < 100 else values[5]
        if rng.random() < 0.2:  # a partial reading, in any order
            sel = rng.permutation(p)[: rng.integers(1, p)].astype(np.intp)
            values = values[sel]
        else:
            sel = slice(None)
        weight = 0.02 if rng.random() < 0.1 else 1.0  # anomalous readings learn at 0.02
        z, warm, full = ours.z(sel, values)
        z_ref, warm_ref = reference_z(ref, sel, values)
        np.testing.assert_allclose(z, z_ref, rtol=1e-13)
        np.testing.assert_array_equal(warm, warm_ref)
        assert full == (isinstance(sel, slice) and bool(warm_ref.all()))
        ours.learn(sel, values, z, warm, full, weight)
        reference_learn(ref, sel, values, z_ref, warm_ref, weight)
        _assert_same(ours, ref)
        steady_seen |= ours.steady
    assert steady_seen  # the steady path was exercised too
    assert ours.c[5] > 0  # the once-constant sensor took part in the moments


def test_the_residuals_are_those_of_the_precision() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(5, 5))
    precision = a @ a.T + 5 * np.eye(5)
    inv_sqrt_diag = 1.0 / np.sqrt(np.diag(precision))
    z = rng.normal(size=5)
    d2, r, r2, r_max, total = kernel.residuals(precision, inv_sqrt_diag, z)
    y = precision @ z
    assert d2 == pytest.approx(z @ y, rel=1e-13)
    np.testing.assert_allclose(r, y * inv_sqrt_diag, rtol=1e-13)
    np.testing.assert_allclose(r2, r * r, rtol=1e-13)
    assert r_max == pytest.approx(np.abs(r).max(), rel=1e-13)
    assert total == pytest.approx((r * r).sum(), rel=1e-13)
    # a NaN residual (inf - inf in an absurd reading) is the largest, as numpy's max has it
    _, _, _, r_max, _ = kernel.residuals(precision, inv_sqrt_diag, np.array([np.inf, -np.inf, 0, 0, 0]))
    assert r_max != r_max
