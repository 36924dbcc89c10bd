"""Score calibration: raw detector scores → comparable anomaly likelihoods in [0, 1].

Raw scores of different detectors live on different scales (HalfSpaceTrees: mass in [0, 1];
StandardAbsoluteDeviation: an unbounded z-score; a fresh SAD even scores 1e10). A single alert
threshold only makes sense on a common scale, so each raw detector is wrapped in
`TailProbability`, which tracks the running distribution of the raw scores the detector gives
*before* learning each reading, and reports how far out in that distribution the current score
lies.
"""

from __future__ import annotations

import math
from typing import Any

from river import anomaly
from river.base import AnomalyDetector, SupervisedAnomalyDetector

__all__ = ["TailProbability", "normal_cdf"]


def normal_cdf(z: float) -> float:
    """P(Z <= z) for a standard normal Z."""
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _only_value(x: dict) -> float:
    if len(x) != 1:
        raise ValueError(f"a univariate detector needs exactly one feature, got {sorted(x)}")
    return next(iter(x.values()))


class TailProbability(AnomalyDetector):
    """Calibrate any anomaly detector's raw score to a likelihood in [0, 1].

    The wrapped detector's raw score is compared with an exponentially weighted mean and variance
    of its past raw scores; the output is the standard normal CDF of that z-score. A score of
    0.999 therefore means "about 1 in 1000 of this detector's recent scores were this high" on
    roughly normal score distributions, whatever the detector.

    Parameters
    ----------
    anomaly_detector
        The detector whose raw `score_one` is calibrated.
    window
        Effective memory of the score statistics, in readings (EW weight 1 / window).
    min_samples
        Readings learned before any non-zero score is given; hides the meaningless scores
        fresh detectors give (a fresh StandardAbsoluteDeviation scores 1e10).

    Examples
    --------
    >>> from river import anomaly
    >>> model = TailProbability(anomaly_detector=anomaly.StandardAbsoluteDeviation())
    >>> for i in range(200):
    ...     model.learn_one({"value": float(i % 7)})
    >>> model.score_one({"value": 3.0}) < 0.9
    True
    >>> model.score_one({"value": 300.0}) > 0.999
    True
    """

    def __init__(
        self,
        anomaly_detector: Any = None,  # any River detector, pipeline or univariate (SAD)
        window: int = 500,
        min_samples: int = 30,
    ) -> None:
        self.anomaly_detector = (
            anomaly_detector if anomaly_detector is not None else anomaly.StandardAbsoluteDeviation()
        )
        self.window = window
        self.min_samples = min_samples
        self._n = 0
        self._mean = 0.0
        self._var = 0.0

    @classmethod
    def _unit_test_params(cls) -> Any:
        yield {"anomaly_detector": anomaly.StandardAbsoluteDeviation(), "window": 100}

    def _raw(self, x: dict) -> float:
        detector = self.anomaly_detector
        if isinstance(detector, SupervisedAnomalyDetector):
            # Univariate detectors such as StandardAbsoluteDeviation score a target `y`.
            raw = float(detector.score_one({}, _only_value(x)))
        else:
            raw = float(detector.score_one(x))
        return raw if math.isfinite(raw) else 0.0

    def learn_one(self, x: dict) -> None:
        raw = self._raw(x)
        if self._n >= self.min_samples // 2:  # skip the first, wildest raw scores
            self._update(raw)
        else:
            self._n += 1
        detector = self.anomaly_detector
        if isinstance(detector, SupervisedAnomalyDetector):
            detector.learn_one({}, _only_value(x))
        else:
            detector.learn_one(x)

    def _update(self, raw: float) -> None:
        self._n += 1
        alpha = max(1.0 / self.window, 1.0 / self._n)
        delta = raw - self._mean
        self._mean += alpha * delta
        self._var = (1.0 - alpha) * (self._var + alpha * delta * delta)

    def score_one(self, x: dict) -> float:
        if self._n < self.min_samples:
            return 0.0
        std = math.sqrt(self._var) or 1e-12
        return normal_cdf((self._raw(x) - self._mean) / std)
