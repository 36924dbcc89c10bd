"""Exponentially weighted z-scores for sensor telemetry, with stuck-sensor and noise-burst terms.

One small state per feature (a dozen floats), pure Python arithmetic: cheap enough for one
model per machine sensor at fleet scale, and it covers the faults a sensor stream shows:

- spikes and level shifts: residual of the reading against a fast EW prediction, in units of
  the residual's own EW standard deviation;
- drift: distance of the reading from a slow EW baseline, in units of the total spread;
- noise bursts: short-term vs long-term EW variance of first differences;
- a stuck sensor: a run of identical readings on a sensor that normally moves.

Each term becomes a two-sided tail probability and the score is the largest of them.
"""

from __future__ import annotations

import math
from typing import Any

from river.base import AnomalyDetector

__all__ = ["EWMZScore"]

_SQRT2 = math.sqrt(2.0)
_TINY = 1e-12


class _FeatureState:
    """Learned statistics of one feature; slots keep the pickle small."""

    __slots__ = (
        "dvar",
        "dvar_short",
        "fast",
        "last",
        "n",
        "resid_var",
        "run",
        "slow",
        "slow_var",
        "trend"
    )

    def __init__(self, x: float) -> None:
        self.n = 0
        self.fast = x
        self.trend = 0.0
        self.resid_var = 0.0
        self.slow = x
        self.slow_var = 0.0
        self.last = x
        self.run = 0
        self.dvar = 0.0
        self.dvar_short = 0.0

    def __getstate__(self) -> tuple:
        return tuple(getattr(self, s) for s in self.__slots__)

    def __setstate__(self, state: tuple) -> None:
        for name, value in zip(self.__slots__, state):
            setattr(self, name, value)


class EWMZScore(AnomalyDetector):
    """Multi-term exponentially weighted z-score detector; score in [0, 1].

    Parameters
    ----------
    fast_alpha
        Level weight of the Holt predictor of the next reading (tracks load cycles).
    trend_beta
        Trend weight of that predictor: ramps up and down a duty cycle are predicted, not flagged.
    slow_alpha
        Weight of the slow baseline that drifts are measured against.
    var_alpha
        Weight of the EW variances (how fast "normal spread" adapts).
    burst_alpha
        Weight of the short-term difference variance that reveals noise bursts.
    stuck_run
        Identical consecutive readings that make a moving sensor "stuck".
    grace
        Readings per feature before any non-zero score.
    protect_z
        Readings scoring at or above this z are learned at `protect_weight` times the usual
        weight, so a fault does not become the baseline it is measured against (an online
        model that learns a level shift at full speed resolves the alert while the fault lasts).
    protect_weight
        Learning weight factor for such readings; > 0 so a lasting change is learned eventually.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(7)
    >>> model = EWMZScore()
    >>> for _ in range(500):
    ...     model.learn_one({"temp": 70 + rng.gauss(0, 0.5)})
    >>> model.score_one({"temp": 70.2}) < 0.9
    True
    >>> model.score_one({"temp": 80.0}) > 0.9999
    True
    """

    def __init__(
        self,
        fast_alpha: float = 0.3,
        trend_beta: float = 0.05,
        slow_alpha: float = 0.003,
        var_alpha: float = 0.01,
        burst_alpha: float = 0.2,
        stuck_run: int = 8,
        grace: int = 30,
        protect_z: float = 3.0,
        protect_weight: float = 0.05,
    ) -> None:
        self.fast_alpha = fast_alpha
        self.trend_beta = trend_beta
        self.slow_alpha = slow_alpha
        self.var_alpha = var_alpha
        self.burst_alpha = burst_alpha
        self.stuck_run = stuck_run
        self.grace = grace
        self.protect_z = protect_z
        self.protect_weight = protect_weight
        self._features: dict[str, _FeatureState] = {}

    @classmethod
    def _unit_test_params(cls) -> Any:
        yield {}
        yield {"fast_alpha": 0.5, "trend_beta": 0.0, "stuck_run": 4, "grace": 5}

    def learn_one(self, x: dict) -> None:
        self.score_learn_one(x)

    def score_learn_one(self, x: dict) -> float:
        """`score_one(x)` then `learn_one(x)` in one pass: the z-scores the score needs are the
        ones learning needs (to protect the baseline), so the pipeline's hot path computes
        them once. Same result as the two calls."""
        worst = 0.0
        features = self._features
        grace = self.grace
        for name, value in x.items():
            v = float(value)
            state = features.get(name)
            if state is None:
                features[name] = _FeatureState(v)
                continue
            z = self._z(state, v) if state.n >= grace else 0.0
            worst = max(worst, z)
            self._learn_feature(state, v, z)
        return math.erf(worst / _SQRT2)

    def _learn_feature(self, s: _FeatureState, v: float, z: float) -> None:
        protect = self.protect_weight if z >= self.protect_z else 1.0
        if s.n * self.slow_alpha < 0.6:
            protect = 1.0  # the slow baseline is still forming: learn everything
        # Variances start with weight 1/n so the first readings set the scale quickly.
        s.n += 1
        a_var = max(self.var_alpha, 1.0 / s.n) * protect
        resid = v - s.fast - s.trend
        s.resid_var += a_var * (resid * resid - s.resid_var)
        dev = v - s.slow
        # The drift baseline's spread must span whole duty cycles, hence the slow weight.
        a_slow = max(self.slow_alpha, 1.0 / s.n) * protect
        # ... and adapts slower still than the baseline, so a drift does not widen it as fast
        # as it moves it away.
        s.slow_var += max(self.slow_alpha / 3.0, 1.0 / s.n) * protect * (dev * dev - s.slow_var)
        diff = v - s.last
        d2 = diff * diff
        s.dvar += a_var * (d2 - s.dvar)
        s.dvar_short += max(self.burst_alpha, 1.0 / s.n) * (d2 - s.dvar_short)
        s.run = s.run + 1 if diff == 0.0 else 0
        level = s.fast + s.trend + self.fast_alpha * resid
        s.trend += self.trend_beta * (level - s.fast - s.trend)
        s.fast = level
        s.slow += a_slow * dev
        s.last = v

    def score_one(self, x: dict) -> float:
        worst = 0.0
        features = self._features
        for name, value in x.items():
            state = features.get(name)
            if state is None or state.n < self.grace:
                continue
            z = self._z(state, float(value))
            worst = max(worst, z)
        return math.erf(worst / _SQRT2)  # two-sided tail: P(|Z| < z)

    def _z(self, s: _FeatureState, v: float) -> float:
        z_resid = abs(v - s.fast - s.trend) / math.sqrt(s.resid_var + _TINY)
        # The drift baseline is trusted once it has seen ~1/slow_alpha readings.
        z_drift = abs(v - s.slow) / math.sqrt(s.slow_var + _TINY) if s.n * self.slow_alpha >= 0.6 else 0.0
        # Ratio of difference variances: ~1 normally; an F-like statistic, mapped to a z-scale
        # by its log with the spread of a ~10-reading short window.
        diff = v - s.last
        short = s.dvar_short + self.burst_alpha * (diff * diff - s.dvar_short)
        z_burst = math.log((short + _TINY) / (s.dvar + _TINY)) * 1.2 if s.dvar > 0 else 0.0
        z = max(z_resid, z_drift, z_burst)
        if diff == 0.0 and s.dvar > _TINY:
            run = s.run + 1
            if run >= self.stuck_run:
                z = max(z, 3.0 + (run - self.stuck_run) * 0.5)
        return z
