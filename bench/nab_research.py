"""Fast what-if experiments on raw surprise signals (numpy, causal), before porting to a detector.

Raw signals are computed vectorised (every filter causal: reading t only sees readings <= t),
then a small post-processor (likelihood + post-alarm suppression) turns them into scores that
`anomstream.evaluation.nab_scorer` rates. Used to choose the default detector's design on fold A.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.signal import lfilter


from nab_eval import NAB, folds, print_report, report

from anomstream.evaluation.nab_corpus import load_corpus, read_series

CORPUS = load_corpus(NAB)
VALUES = {k: read_series(NAB / "data" / k)[1]["value"] for k in CORPUS}
A, B = folds(list(CORPUS))


def _adapt_prototypes(
    protos: np.ndarray, used: np.ndarray, feat: np.ndarray, j: int, close: bool, t: int, rate: float, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Move the nearest prototype towards `feat` if it is close, else add `feat` as a new one,
    replacing the least recently used when the library holds `k` already."""
    if j >= 0 and close:
        protos[j] += rate * (feat - protos[j])
        used[j] = t
    elif len(protos) < k:
        protos = np.vstack([protos, feat])
        used = np.r_[used, t]
    else:
        j = int(np.argmin(used))
        protos[j] = feat
        used[j] = t
    return protos, used


def ewm(x: np.ndarray, alpha: float) -> np.ndarray:
    """EWMA with y[0] = x[0]: y_t = y_{t-1} + alpha (x_t - y_{t-1})."""
    y, _ = lfilter([alpha], [1, alpha - 1], x, zi=[x[0] * (1 - alpha)])
    return y


def lag(x: np.ndarray, k: int = 1) -> np.ndarray:
    return np.r_[np.full(k, x[0]), x[:-k]]


def ewvar(x: np.ndarray, alpha: float) -> np.ndarray:
    """EW variance of x around its EW mean, both lagged: the spread known before reading t."""
    m = lag(ewm(x, alpha))
    return lag(ewm((x - m) ** 2, alpha))


def likelihood(raw: np.ndarray, short: float, long: float) -> np.ndarray:
    """Numenta-style: EW short mean of raw vs the EW distribution of that mean (lagged)."""
    s = ewm(raw, short)
    m = lag(ewm(s, long))
    v = lag(ewm((s - m) ** 2, long))
    z = (s - m) / np.sqrt(v + 1e-12)
    z[:50] = 0
    return z


def suppress(z: np.ndarray, alarm: float, dead: int, damp: float) -> np.ndarray:
    """Causal dead time: after z >= alarm, the next `dead` readings are multiplied by damp."""
    out = z.copy()
    since = dead
    for i, zi in enumerate(z.tolist()):
        if since < dead:
            out[i] = zi * damp if zi > 0 else zi
            since += 1
        elif zi >= alarm:
            since = 0
    return out


def to_score(z: np.ndarray) -> np.ndarray:
    """z to a (0, 1) score keeping order: logistic, monotone, no saturation at float precision."""
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50) / 2))


def evaluate(raw_fn: Callable[[np.ndarray], np.ndarray], **post: float) -> dict:
    scores = {}
    for key, x in VALUES.items():
        z = raw_fn(x)
        if post:
            z = suppress(
                z, post.get("alarm", 4.0), int(post.get("dead", 300)), post.get("damp", 0.3)
            )
        scores[key] = to_score(z)
    out = report(CORPUS, scores)
    return out


if __name__ == "__main__":

    def raw_z(x: np.ndarray) -> np.ndarray:
        f = lag(ewm(x, 0.3))
        rv = lag(ewm((x - f) ** 2, 0.005))
        z = np.abs(x - f) / np.sqrt(rv + 1e-12)
        return likelihood(np.log1p(z), 0.2, 0.002)

    print_report(evaluate(raw_z, alarm=3.0, dead=300, damp=0.3))
    _ = math


def records(z: np.ndarray, dead: int, damp: float) -> np.ndarray:
    """Keep a reading's z only if it beats every z of the previous `dead` readings."""
    from scipy.ndimage import maximum_filter1d

    # running max of the previous `dead` values (causal): shift a trailing max filter by one
    prev = lag(maximum_filter1d(z, size=dead, origin=(dead - 1) // 2, mode="nearest"))
    prev[0] = np.inf
    return np.where(z > prev, z, np.minimum(z, prev) * damp - 10)


def return_period(raw: np.ndarray, horizon: int) -> np.ndarray:
    """Readings since the last reading at least as surprising (capped at `horizon`)."""
    out = np.empty(len(raw))
    vals: list[float] = []
    times: list[int] = []
    for t, r in enumerate(raw.tolist()):
        while vals and vals[-1] < r:
            vals.pop()
            times.pop()
        if vals and t - times[-1] < horizon:
            out[t] = t - times[-1]
        else:
            out[t] = horizon + r  # never beaten within the horizon: rank by magnitude
        vals.append(r)
        times.append(t)
        if t - times[0] > horizon:
            del vals[0], times[0]
    return out


def prototype_novelty(
    x: np.ndarray,
    block: int = 6,
    dims: int = 8,
    k: int = 32,
    vigilance: float = 0.1,
    rate: float = 0.1,
    warm: int = 50,
) -> np.ndarray:
    """ART-like novelty of the recent shape: distance of the window vector to its nearest
    prototype, in units of the range seen so far. Causal; prototypes learned online."""
    n = len(x)
    out = np.zeros(n)
    # block means of the last dims*block readings, newest first, plus the current reading
    c = np.cumsum(np.r_[0.0, x])
    protos = np.zeros((0, dims + 1))
    used = np.zeros(0)
    lo = hi = x[0]
    span = dims * block
    for t in range(n):
        v = x[t]
        if t < span:
            lo, hi = min(lo, v), max(hi, v)
            continue
        ends = t + 1 - block * np.arange(dims)
        feat = np.r_[v, (c[ends] - c[ends - block]) / block]
        rng = max(hi - lo, 1e-9)
        if len(protos):
            d = np.sqrt(((protos - feat) ** 2).sum(1)) / (rng * math.sqrt(dims + 1))
            j = int(np.argmin(d))
            out[t] = d[j]
        else:
            j, out[t] = -1, 1.0
        if t < warm:
            out[t] = 0.0
        protos, used = _adapt_prototypes(protos, used, feat, j, out[t] < vigilance, t, rate, k)
        lo, hi = min(lo, v), max(hi, v)
    return out


def beats_decayed_peak(raw: np.ndarray, half_life: float, floor: float = 0.0) -> np.ndarray:
    """Keep raw_t only where it beats the running peak decayed with `half_life` readings."""
    g = 0.5 ** (1.0 / half_life)
    out = np.empty(len(raw))
    peak = 0.0
    for t, r in enumerate(raw.tolist()):
        peak *= g
        out[t] = r if r > peak else floor
        peak = max(peak, r)
    return out


def novelty2(
    x: np.ndarray,
    block: int = 6,
    dims: int = 8,
    k: int = 32,
    vigilance: float = 0.1,
    rate: float = 0.1,
    agg: str = "mean",
    metric: str = "l2",
    warm: int = 60,
) -> np.ndarray:
    """Like `prototype_novelty`, with block aggregation and distance metric options."""
    n = len(x)
    out = np.zeros(n)
    protos = np.zeros((0, dims))
    used = np.zeros(0)
    lo = hi = x[0]
    blocks: list[float] = []
    cur: list[float] = []
    avg = x[0]
    for t in range(n):
        v = x[t]
        cur.append(v)
        if len(cur) == block:
            m = sum(cur) / block
            if agg == "extreme":
                a, b = max(cur), min(cur)
                e = a if abs(a - avg) >= abs(b - avg) else b
            else:
                e = m
            avg = 0.5 * (avg + m)
            blocks.append(e)
            if len(blocks) > dims - 1:
                del blocks[0]
            cur = []
        if len(blocks) < dims - 1 or t < warm:
            lo, hi = min(lo, v), max(hi, v)
            continue
        # the newest, still incomplete block is the current reading itself
        feat = np.array(blocks + [v if agg != "mean" else sum(cur + [v]) / (len(cur) + 1)])
        rng = max(hi - lo, 1e-9)
        if len(protos):
            diff = np.abs(protos - feat)
            d = (diff.max(1) if metric == "linf" else np.sqrt((diff**2).mean(1))) / rng
            j = int(np.argmin(d))
            out[t] = d[j]
        else:
            j, out[t] = -1, 1.0
        protos, used = _adapt_prototypes(protos, used, feat, j, out[t] < vigilance, t, rate, k)
        lo, hi = min(lo, v), max(hi, v)
    return out


def value_rarity(
    x: np.ndarray, bins: int = 20, halve_every: int = 2000, warm: int = 60
) -> np.ndarray:
    """-log of the (smoothed) share of past readings in the reading's bin; grid from the range
    seen so far (bin width fixed at `warm`, origin 0, coarsened when too many bins)."""
    out = np.zeros(len(x))
    counts: dict[int, float] = {}
    total = 0.0
    width = 0.0
    lo = hi = x[0]
    for t, v in enumerate(x.tolist()):
        if t >= warm and width == 0.0:
            width = max(hi - lo, 1e-9) / bins
        if width:
            b = math.floor(v / width)
            c = counts.get(b, 0.0) + 0.5 * (counts.get(b - 1, 0.0) + counts.get(b + 1, 0.0))
            out[t] = -math.log((c + 0.5) / (total + 0.5))
            counts[b] = counts.get(b, 0.0) + 1.0
            total += 1.0
            if len(counts) > 4 * bins:
                width *= 2
                merged: dict[int, float] = {}
                for k, c in counts.items():
                    merged[k // 2] = merged.get(k // 2, 0.0) + c
                counts = merged
            if t % halve_every == 0:
                counts = {k: c / 2 for k, c in counts.items()}
                total /= 2
        lo, hi = min(lo, v), max(hi, v)
    return out


def prev_max(z: np.ndarray, dead: int) -> np.ndarray:
    """max of the `dead` readings before each reading (causal); -inf for the first."""
    from scipy.ndimage import maximum_filter1d

    prev = lag(maximum_filter1d(z, size=dead, origin=(dead - 1) // 2, mode="nearest"))
    prev[0] = -np.inf
    return prev


def context_rarity(
    x: np.ndarray, block: int = 9, bins: int = 20, halve_every: int = 2000, warm: int = 150
) -> np.ndarray:
    """-log P(value bin | bin of the mean of the previous `block` readings), smoothed, causal."""
    out = np.zeros(len(x))
    pair: dict[tuple[int, int], float] = {}
    ctx: dict[int, float] = {}
    width = 0.0
    lo = hi = x[0]
    c = np.cumsum(np.r_[0.0, x])
    for t, v in enumerate(x.tolist()):
        if t >= warm and width == 0.0:
            width = max(hi - lo, 1e-9) / bins
        if width and t >= block:
            m = (c[t] - c[t - block]) / block
            a, b = math.floor(m / width), math.floor(v / width)
            near = pair.get((a, b), 0.0) + 0.5 * (
                pair.get((a, b - 1), 0.0) + pair.get((a, b + 1), 0.0)
            )
            out[t] = -math.log((near + 0.5) / (ctx.get(a, 0.0) + 0.5 * bins))
            pair[(a, b)] = pair.get((a, b), 0.0) + 1.0
            ctx[a] = ctx.get(a, 0.0) + 1.0
            if t % halve_every == 0:
                pair = {k: q / 2 for k, q in pair.items()}
                ctx = {k: q / 2 for k, q in ctx.items()}
        lo, hi = min(lo, v), max(hi, v)
    return out
