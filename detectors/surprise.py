"""Research prototype (v1): surprise -> likelihood -> suppression. Will be cleaned up."""

from __future__ import annotations

import math
from typing import Any

from river.base import AnomalyDetector

__all__ = ["SurpriseLikelihood"]

_TINY = 1e-12
_SQRT2 = math.sqrt(2.0)


class _State:
    __slots__ = (
        "n", "fast", "rvar", "short", "slow", "svar", "lo", "hi",
        "rs", "lmean", "lvar", "since",
    )

    def __init__(self, v: float) -> None:
        self.n = 0
        self.fast = v
        self.rvar = 0.0
        self.short = v
        self.slow = v
        self.svar = 0.0
        self.lo = v
        self.hi = v
        self.rs = 0.0
        self.lmean = 0.0
        self.lvar = 0.0
        self.since = 10**9

    def __getstate__(self) -> tuple:
        return tuple(getattr(self, s) for s in self.__slots__)

    def __setstate__(self, state: tuple) -> None:
        for name, value in zip(self.__slots__, state):
            setattr(self, name, value)


class SurpriseLikelihood(AnomalyDetector):
    """Prototype.

    Examples
    --------
    >>> model = SurpriseLikelihood()
    >>> for i in range(500):
    ...     model.learn_one({"value": float(i % 7)})
    >>> model.score_one({"value": 3.0}) < 0.9
    True
    """

    def __init__(
        self,
        fast_alpha: float = 0.3,
        short_alpha: float = 0.1,
        slow_alpha: float = 0.005,
        var_alpha: float = 0.005,
        raw_alpha: float = 0.2,
        long_alpha: float = 0.002,
        w_spike: float = 1.0,
        w_level: float = 1.0,
        w_range: float = 1.0,
        alarm: float = 0.999,
        suppress: int = 300,
        damp: float = 0.5,
        grace: int = 100,
    ) -> None:
        self.fast_alpha = fast_alpha
        self.short_alpha = short_alpha
        self.slow_alpha = slow_alpha
        self.var_alpha = var_alpha
        self.raw_alpha = raw_alpha
        self.long_alpha = long_alpha
        self.w_spike = w_spike
        self.w_level = w_level
        self.w_range = w_range
        self.alarm = alarm
        self.suppress = suppress
        self.damp = damp
        self.grace = grace
        self._states: dict[str, _State] = {}

    @classmethod
    def _unit_test_params(cls) -> Any:
        yield {}

    def _raw(self, s: _State, v: float) -> float:
        z_spike = abs(v - s.fast) / math.sqrt(s.rvar + _TINY)
        short = s.short + self.short_alpha * (v - s.short)
        sd = math.sqrt(s.svar + _TINY)
        z_level = abs(short - s.slow) / sd
        if v > s.hi:
            z_range = (v - s.hi) / sd
        elif v < s.lo:
            z_range = (s.lo - v) / sd
        else:
            z_range = 0.0
        r = max(self.w_spike * z_spike, self.w_level * z_level, self.w_range * z_range)
        return math.log1p(r)

    def _likelihood(self, s: _State, rs: float) -> float:
        z = (rs - s.lmean) / math.sqrt(s.lvar + _TINY)
        return 1.0 - 0.5 * math.erfc(z / _SQRT2)

    def score_one(self, x: dict) -> float:
        worst = 0.0
        for name, value in x.items():
            s = self._states.get(name)
            if s is None or s.n < self.grace:
                continue
            v = float(value)
            rs = s.rs + self.raw_alpha * (self._raw(s, v) - s.rs)
            p = self._likelihood(s, rs)
            if s.since < self.suppress:
                p *= self.damp
            worst = max(worst, p)
        return worst

    def learn_one(self, x: dict) -> None:
        for name, value in x.items():
            v = float(value)
            s = self._states.get(name)
            if s is None:
                self._states[name] = _State(v)
                continue
            s.n += 1
            r = self._raw(s, v)
            rs = s.rs + self.raw_alpha * (r - s.rs)
            p = self._likelihood(s, rs)
            if s.n >= self.grace and s.since >= self.suppress and p >= self.alarm:
                s.since = 0
            else:
                s.since += 1
            a_l = max(self.long_alpha, 1.0 / s.n)
            d = rs - s.lmean
            s.lmean += a_l * d
            s.lvar = (1 - a_l) * (s.lvar + a_l * d * d)
            s.rs = rs
            a_v = max(self.var_alpha, 1.0 / s.n)
            resid = v - s.fast
            s.rvar += a_v * (resid * resid - s.rvar)
            dev = v - s.slow
            s.svar += a_v * (dev * dev - s.svar)
            s.fast += self.fast_alpha * resid
            s.short += self.short_alpha * (v - s.short)
            s.slow += max(self.slow_alpha, 1.0 / s.n) * dev
            s.lo = min(s.lo, v)
            s.hi = max(s.hi, v)
