"""Build detectors by name, as the config names them.

Every entry returns a River anomaly detector whose `score_one` is a *calibrated* score in [0, 1]
(comparable across detectors and entities), so one alert threshold works for all of them. Raw
River detectors are wrapped in `TailProbability` for that.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from river import anomaly, preprocessing
from river.base import AnomalyDetector

from anomstream.detectors.calibration import TailProbability
from anomstream.detectors.ewm_zscore import EWMZScore
from anomstream.detectors.relation_model import RelationModel
from anomstream.detectors.shape_novelty import ShapeNovelty
from anomstream.stream.errors import ConfigError

__all__ = ["DETECTORS", "DetectorSpec", "build_detector", "detector_names"]


@dataclass(frozen=True)
class DetectorSpec:
    summary: str
    factory: Callable[..., AnomalyDetector]


def _hst(seed: int, n_trees: int = 10, height: int = 6, window_size: int = 100) -> AnomalyDetector:
    # HalfSpaceTrees assumes features in [0, 1], hence the scaler; its default size
    # (25 trees of height 15) costs ~1.2 MB per model, too heavy for one model per sensor.
    return TailProbability(
        anomaly_detector=preprocessing.MinMaxScaler()
        | anomaly.HalfSpaceTrees(
            n_trees=n_trees, height=height, window_size=window_size, seed=seed
        )
    )


def _sad(seed: int) -> AnomalyDetector:
    del seed  # deterministic
    return TailProbability(anomaly_detector=anomaly.StandardAbsoluteDeviation())


def _ewm(seed: int, **params: Any) -> AnomalyDetector:
    del seed
    return EWMZScore(**params)


DETECTORS: dict[str, DetectorSpec] = {
    "default": DetectorSpec(
        "anomstream's default detector (currently shape-novelty)",
        lambda seed, **params: ShapeNovelty(**params),
    ),
    "shape-novelty": DetectorSpec(
        "novelty of the recent trajectory vs learned prototypes, times value rarity; records only",
        lambda seed, **params: ShapeNovelty(**params),  # deterministic: no seed
    ),
    "ewm-zscore": DetectorSpec(
        "EWM mean/variance z-score with stuck-sensor and noise-burst terms", _ewm
    ),
    "hst": DetectorSpec("River HalfSpaceTrees on min-max scaled input, calibrated", _hst),
    "sad": DetectorSpec("River StandardAbsoluteDeviation, calibrated", _sad),
    "relations": DetectorSpec(
        "per-machine model of the relations between sensors (EW precision matrix), with attribution",
        lambda seed, **params: RelationModel(**params),  # deterministic: no seed
    ),
}


def detector_names() -> list[str]:
    return sorted(DETECTORS)


def build_detector(name: str, params: Mapping[str, Any] | None = None, *, seed: int = 0) -> AnomalyDetector:
    """A fresh detector `name` with keyword `params`; errors name the config key at fault."""
    spec = DETECTORS.get(name)
    if spec is None:
        raise ConfigError("detector.name", f"unknown detector {name!r} (known: {', '.join(detector_names())})")
    try:
        return spec.factory(seed, **dict(params or {}))
    except TypeError as exc:
        raise ConfigError("detector.params", f"{name}: {exc}") from None
