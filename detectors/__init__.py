"""Online anomaly detectors (River API), score calibration, per-entity models and alert policy."""

from anomstream.detectors.calibration import TailProbability
from anomstream.detectors.entities import ModelStore
from anomstream.detectors.ewm_zscore import EWMZScore
from anomstream.detectors.policy import AlertPolicy, PolicyState, Transition
from anomstream.detectors.registry import DETECTORS, build_detector
from anomstream.detectors.relation_model import RelationModel

__all__ = [
    "DETECTORS",
    "AlertPolicy",
    "EWMZScore",
    "ModelStore",
    "PolicyState",
    "RelationModel",
    "TailProbability",
    "Transition",
    "build_detector",
]
