"""Online anomaly detectors (River API), score calibration, per-entity models and alert policy."""

from detectors.calibration import TailProbability
from detectors.entities import ModelStore
from detectors.ewm_zscore import EWMZScore
from detectors.policy import AlertPolicy, PolicyState, Transition
from detectors.registry import DETECTORS, build_detector

__all__ = [
    "DETECTORS",
    "AlertPolicy",
    "EWMZScore",
    "ModelStore",
    "PolicyState",
    "TailProbability",
    "Transition",
    "build_detector",
]
