"""River's estimator checks, applied to every detector the registry can build.

`river.checks.yield_checks` draws its anomaly data set from scikit-learn's CreditCard download,
which a test suite must not need, and includes checks about features appearing and disappearing
that do not apply to per-sensor models fed `{"value": v}`. So the checks that fit anomaly
detectors are taken from `river.checks.common` and run on a small seeded sensor stream.
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Callable

import pytest
from river.base import AnomalyDetector
from river.checks import common

from anomstream.detectors.registry import DETECTORS, build_detector

MODEL_CHECKS = [
    common.check_repr,
    common.check_str,
    common.check_tags,
    common.check_clone_same_class,
    common.check_clone_is_idempotent,
    common.check_clone_changes_memory_addresses,
    common.check_clone_with_new_params_applies,
    common.check_init_has_default_params_for_tests,
    common.check_init_default_params_are_not_mutable,
    common.check_doc,
    common.check_get_params_matches_signature,
    common.check_pickling_supports_roundtrip,
    common.check_repr_roundtrips_clone,
]


def score_one_keeps_state(model: AnomalyDetector, dataset: list) -> None:
    """Scoring is pure: the model's state is the same before and after `score_one`."""
    for x, _ in dataset:
        before = pickle.dumps(model)
        model.score_one(x)
        assert pickle.dumps(model) == before, "score_one changed the model's state"
        model.learn_one(x)


def scores_are_probabilities(model: AnomalyDetector, dataset: list) -> None:
    for x, _ in dataset:
        assert 0.0 <= model.score_one(x) <= 1.0
        model.learn_one(x)


DATASET_CHECKS: list[Callable] = [
    common.check_learn_one,
    common.check_pickling,
    common.check_predict_one_pure,  # score_one does not mutate its input
    common.check_predict_one_before_any_learn,
    common.check_no_state_aliasing_with_input,
    common.check_clone_is_independent,
    common.check_seeding_is_idempotent,
    score_one_keeps_state,
    scores_are_probabilities,
]


def sensor_stream(n: int = 300, seed: int = 7) -> list[tuple[dict, None]]:
    """A noisy load cycle with a spike, a level shift and a stuck stretch."""
    rng = random.Random(seed)
    values: list[float] = []
    for i in range(n):
        v = 50 + 5 * ((i % 40) / 40) + rng.gauss(0, 0.5)
        v += 30 if i == 150 else 0
        v += 8 if i > 200 else 0
        values.append(values[-1] if 250 < i < 270 else v)
    return [({"value": v}, None) for v in values]


@pytest.mark.parametrize("name", sorted(DETECTORS))
@pytest.mark.parametrize("check", MODEL_CHECKS, ids=lambda c: c.__name__)
def test_model_check(name: str, check: Callable) -> None:
    check(build_detector(name, seed=1))


@pytest.mark.parametrize("name", sorted(DETECTORS))
@pytest.mark.parametrize("check", DATASET_CHECKS, ids=lambda c: c.__name__)
def test_dataset_check(name: str, check: Callable) -> None:
    check(build_detector(name, seed=1), dataset=sensor_stream())


FUSED = sorted(n for n in DETECTORS if hasattr(build_detector(n, seed=1), "score_learn_one"))


def test_the_default_detector_has_a_fused_path() -> None:
    assert "default" in FUSED  # the service's hot path relies on it


@pytest.mark.parametrize("name", FUSED)
def test_fused_score_learn_matches_score_then_learn(name: str) -> None:
    """Detectors offering the service's one-pass `score_learn_one` must agree with the two calls."""
    fused, plain = build_detector(name, seed=1), build_detector(name, seed=1)
    for x, _ in sensor_stream():
        expected = plain.score_one(x)
        plain.learn_one(x)
        assert fused.score_learn_one(x) == expected
    assert pickle.dumps(fused) == pickle.dumps(plain)
