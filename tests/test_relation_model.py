"""RelationModel: relation breaks, attribution, calibration on clean data, changing sensor sets.

Pure logic, no broker. The streams are small seeded factor models of a machine: sensors that
follow shared drivers (load, speed) plus their own noise, so every sensor has a normal range and
a relation to the others.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from river.checks import common
from test_detector_checks import DATASET_CHECKS, MODEL_CHECKS

from anomstream.detectors.registry import build_detector
from anomstream.detectors.relation_model import RelationModel
from anomstream.detectors.surprisal_tail import chi2_log_sf, log_normal_sf, max_residual_log_sf

SENSORS = ["load", "speed", "current", "temp", "vibration"]
# current = 2 load + speed + noise; temp and vibration follow load and speed too.
LOADINGS = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.8, 0.3], [0.2, 0.9]])
NOISE = np.array([0.3, 0.3, 0.3, 0.4, 0.4])
_COV = LOADINGS @ LOADINGS.T + np.diag(NOISE**2)
# Residual sd of each sensor regressed on the others: the unit of a relation break.
RESIDUAL_SD = 1.0 / np.sqrt(np.diag(np.linalg.inv(_COV)))


def machine(n: int, seed: int = 1, ar: float = 0.0) -> np.ndarray:
    """n readings of the 5 sensors; drivers and noise AR(1) with coefficient `ar`."""
    rng = np.random.default_rng(seed)
    shocks = rng.normal(size=(n, 2 + len(SENSORS)))
    if ar:
        innov = math.sqrt(1.0 - ar * ar)
        for t in range(1, n):
            shocks[t] = ar * shocks[t - 1] + innov * shocks[t]
    return 50.0 + shocks[:, :2] @ LOADINGS.T + shocks[:, 2:] * NOISE


def rows(data: np.ndarray, names: list[str] = SENSORS) -> Iterator[dict[str, float]]:
    for row in data.tolist():
        yield dict(zip(names, row))


def warm_model(n: int = 2000, **params: object) -> RelationModel:
    model = RelationModel(**params)
    for x in rows(machine(n)):
        model.score_learn_one(x)
    return model


def top(contributions: dict[str, float]) -> str:
    return max(contributions, key=contributions.__getitem__)


def test_relation_break_is_caught_within_a_few_readings_and_names_current() -> None:
    model = warm_model()
    after = machine(50, seed=2)
    current = SENSORS.index("current")
    # 6 residual sd is 1.6 of current's own sd (2.3): it stays inside its normal range (a
    # per-sensor model sees a level move of < 2 sd), and load and speed do not move.
    after[:, current] += 6 * RESIDUAL_SD[current]
    assert 6 * RESIDUAL_SD[current] < 2 * machine(2000)[:, current].std()
    scores, tops = [], []
    for x in rows(after):
        scores.append(model.score_learn_one(x))
        tops.append(top(model.last_contributions) if model.last_contributions else None)
        if scores[-1] >= 0.9999:
            assert math.isclose(sum(model.last_contributions.values()), 1.0, abs_tol=1e-9)
            assert all(v >= 0.0 for v in model.last_contributions.values())
    first = next(i for i, s in enumerate(scores) if s >= 0.9999)
    assert first < 5, scores[:10]
    assert sum(s >= 0.9999 for s in scores) >= 40  # the fault keeps being seen
    assert tops.count("current") >= 45


@pytest.mark.parametrize("ar", [0.0, 0.9], ids=["independent", "ar1"])
def test_clean_streams_rarely_reach_the_alert_tail(ar: float) -> None:
    model = RelationModel()
    scores = np.array([model.score_learn_one(x) for x in rows(machine(100_000, seed=5, ar=ar))])
    share = float((scores >= 0.9999).mean())
    print(f"clean 5-sensor stream, ar={ar}: {100 * share:.4f} % of readings score >= 0.9999")
    assert share < 0.005
    assert scores.max() < 1.0  # tails computed with erfc and floored: never exactly 1


@pytest.mark.parametrize("faulty", SENSORS)
def test_a_single_sensor_fault_ranks_that_sensor_first(faulty: str) -> None:
    model = warm_model()
    col = SENSORS.index(faulty)
    hits = 0
    for x in rows(machine(20, seed=3)):
        x[faulty] += 6 * RESIDUAL_SD[col]
        score = model.score_one(x)  # pure: the model does not learn the fault
        hits += top(model.last_contributions) == faulty
        assert score > 0.99
    assert hits >= 18


def test_sensors_appearing_and_missing_score_on_what_is_there() -> None:
    model = RelationModel()
    data = machine(3000, seed=4)
    later = "vibration"
    seen_later = False
    for i, x in enumerate(rows(data)):
        if i < 800:
            del x[later]  # a sensor that appears later
        if i % 7 == 0:
            del x["temp"]  # an intermittent one
        if i % 11 == 0:
            x["speed"] = math.nan  # non-finite: skipped like missing
        score = model.score_learn_one(x)
        assert 0.0 <= score < 1.0
        contributions = model.last_contributions
        if contributions:
            present = {k for k, v in x.items() if math.isfinite(v)}
            assert set(contributions) <= present
            assert math.isclose(sum(contributions.values()), 1.0, abs_tol=1e-9)
        seen_later |= later in contributions
        if i == 800 + model._stats.forming + 50:
            # past its own warm-up, the new sensor takes part: in a model already calibrated,
            # once its baseline has formed (`RelationStats.forming` readings, 500 by default)
            assert seen_later
    # A relation break while a sensor is missing is still caught, and named.
    x = dict(zip(SENSORS, machine(1, seed=9)[0].tolist()))
    del x["temp"]
    x["current"] += 8 * RESIDUAL_SD[SENSORS.index("current")]
    assert model.score_one(x) >= 0.9999
    assert top(model.last_contributions) == "current"


def test_a_lone_sensor_scores_zero() -> None:
    model = RelationModel()
    for x in rows(machine(500)):
        assert model.score_learn_one({"load": x["load"]}) == 0.0
        assert model.last_contributions == {}
    # A second sensor still in its warm-up changes nothing yet.
    assert model.score_learn_one({"load": 50.0, "speed": 50.0}) == 0.0
    assert model.last_contributions == {}


def test_pickle_round_trip_gives_identical_scores() -> None:
    model = warm_model(1500)
    copy = pickle.loads(pickle.dumps(model))
    tail = machine(300, seed=6)
    tail[100:150, 2] += 2.0  # a fault, so protection and the tail statistics are exercised
    for i, x in enumerate(rows(tail)):
        if i % 5 == 0:
            del x["temp"]
        assert copy.score_learn_one(dict(x)) == model.score_learn_one(x)
        assert copy.last_contributions == model.last_contributions


def test_pickle_is_small() -> None:
    # Two float64 p x p matrices and a few vectors: well inside 8 KB per sensor.
    assert len(pickle.dumps(warm_model(200))) < 8_000 * len(SENSORS)


def test_same_input_same_scores() -> None:
    data = machine(1500, seed=8)
    first, second = RelationModel(), RelationModel()
    scores = [first.score_learn_one(x) for x in rows(data)]
    assert scores == [second.score_learn_one(x) for x in rows(data)]


def test_a_change_for_good_is_learned_eventually() -> None:
    model = warm_model(1000, memory=200)
    changed = machine(6000, seed=10)
    changed[:, 2] += 6 * RESIDUAL_SD[2]  # the relation changes and stays changed
    scores = [model.score_learn_one(x) for x in rows(changed)]
    assert np.mean(np.array(scores[:50]) >= 0.9999) > 0.8  # seen at first, not learned at once
    assert np.mean(np.array(scores[-500:]) >= 0.9999) < 0.01  # and learned in the end


# River's estimator checks, on a multivariate stream (the registry-wide checks in
# test_detector_checks feed one sensor, where this model rightly scores 0).
def multisensor_stream(n: int = 300) -> list[tuple[dict, None]]:
    data = machine(n + 6, seed=11)
    data[200:230, 2] += 3.0
    names = [*SENSORS, "pressure", "flow"]
    extra = np.column_stack([data[:, 0] * 0.5 + 1, data[:, 1] * 0.7 - 2])
    return [(x, None) for x in rows(np.hstack([data, extra])[:n], names)]


SMALL = next(p for p in RelationModel._unit_test_params() if p)  # warms up within the stream
RIVER_STREAM_CHECKS: list[Callable] = [
    *DATASET_CHECKS,
    common.check_emerging_features,
    common.check_disappearing_features,
    common.check_radically_disappearing_features,
    common.check_shuffle_features_no_impact,
]


@pytest.mark.parametrize("params", list(RelationModel._unit_test_params()), ids=["default", "small"])
@pytest.mark.parametrize("check", MODEL_CHECKS, ids=lambda c: c.__name__)
def test_river_model_checks(check: Callable, params: dict) -> None:
    check(RelationModel(**params))


@pytest.mark.parametrize("check", RIVER_STREAM_CHECKS, ids=lambda c: c.__name__)
def test_river_checks_on_a_multisensor_stream(check: Callable) -> None:
    check(RelationModel(**SMALL), dataset=multisensor_stream())


def test_scores_are_non_zero_on_the_check_stream() -> None:
    # The stream checks above must exercise real scores, not the warm-up's zeros.
    model = RelationModel(**SMALL)
    assert max(model.score_learn_one(x) for x, _ in multisensor_stream()) > 0.99


def test_fused_score_learn_matches_score_then_learn() -> None:
    fused, plain = RelationModel(**SMALL), RelationModel(**SMALL)
    for x, _ in multisensor_stream():
        expected = plain.score_one(x)
        contributions = plain.last_contributions
        plain.learn_one(x)
        assert fused.score_learn_one(x) == expected
        assert fused.last_contributions == contributions
    assert pickle.dumps(fused) == pickle.dumps(plain)


def test_the_registry_builds_it_with_params() -> None:
    model = build_detector("relations", {"memory": 500})
    assert isinstance(model, RelationModel) and model.memory == 500


@pytest.mark.parametrize("k", [1, 2, 5, 52])
@pytest.mark.parametrize("q", [0.5, 1e-2, 1e-4, 1e-12])
def test_nominal_tails_match_scipy(k: int, q: float) -> None:
    from scipy import stats

    x = float(stats.chi2.isf(q, k))
    # Wilson–Hilferty for k > 2: ln p within 4 % down to 1e-4, 13 % at 1e-12.
    tolerance = 1e-9 if k <= 2 else (0.04 if q >= 1e-4 else 0.15)
    assert chi2_log_sf(x, k) == pytest.approx(math.log(q), rel=tolerance)
    r = float(stats.norm.isf(-math.expm1(math.log1p(-q) / k) / 2.0))  # Šidák level of the max
    assert max_residual_log_sf(r, k) == pytest.approx(math.log(q), rel=1e-6)


def test_normal_log_tail_does_not_underflow() -> None:
    assert log_normal_sf(40.0) == pytest.approx(-804.608, rel=1e-5)
    assert math.isfinite(log_normal_sf(1e6))


def test_absurd_values_keep_scores_and_shares_sane() -> None:
    """What the decoder lets through (|x| <= 1e38, denormals) never breaks the model."""
    from anomstream.stream.telemetry import MAX_ABS_VALUE

    model = warm_model(600)
    for value in (MAX_ABS_VALUE, -MAX_ABS_VALUE, 5e-324, 0.0):
        x = dict(zip(SENSORS, machine(1, seed=12)[0].tolist()))
        x["current"] = value
        score = model.score_learn_one(x)
        assert 0.0 <= score < 1.0
        assert math.isclose(sum(model.last_contributions.values()), 1.0, abs_tol=1e-9)
        assert top(model.last_contributions) == "current"
    clean = [model.score_learn_one(x) for x in rows(machine(300, seed=13))]
    assert np.mean(np.array(clean) >= 0.9999) < 0.05  # the extremes did not wreck the model


def test_an_indefinite_moment_matrix_still_gives_a_bounded_precision() -> None:
    """Pairwise updates of partial readings can leave the moments indefinite; the precision then
    comes from floored eigenvalues instead of a plain inverse."""
    from anomstream.detectors.relation_stats import RelationStats

    stats = RelationStats(memory=1000, grace=1)
    stats.grow(3)
    stats.c[:] = 1000
    # Pairwise "correlations" no joint distribution has: 0.99, 0.99 and -0.99.
    stats.moment[:] = [[1.0, 0.99, 0.99], [0.99, 1.0, -0.99], [0.99, -0.99, 1.0]]
    stats.refresh()
    eigenvalues = np.linalg.eigvalsh(stats.precision)
    assert np.isfinite(eigenvalues).all() and eigenvalues.min() > 0
    assert eigenvalues.max() <= 2 / 1e-3 + 1e-6  # 1 / (lam / 2), lam >= 1e-3


# The persistence part (off by default; see RelationModel's `persistence`).
PERSISTENT = {"persistence": 0.1}


def test_persistence_catches_a_small_sustained_relation_shift_the_single_reading_misses() -> None:
    shifted = machine(400, seed=14)
    current = SENSORS.index("current")
    shifted[:, current] += 1.5 * RESIDUAL_SD[current]  # 1.5 residual sd: no reading stands out
    shares, tops = {}, []
    for params in ({}, PERSISTENT):
        model = warm_model(**params)
        scores = []
        for x in rows(shifted):
            scores.append(model.score_learn_one(x))
            if params and scores[-1] >= 0.9999:
                assert math.isclose(sum(model.last_contributions.values()), 1.0, abs_tol=1e-9)
                tops.append(top(model.last_contributions))
        shares[bool(params)] = float(np.mean(np.array(scores) >= 0.9999))
    print(f"share >= 0.9999 over a 1.5 residual-sd shift: {shares}")
    assert shares[False] < 0.05 and shares[True] > 0.5, shares
    assert tops.count("current") >= 0.9 * len(tops)  # attributed to the shifted sensor


@pytest.mark.parametrize("ar", [0.0, 0.9], ids=["independent", "ar1"])
def test_persistence_keeps_clean_streams_calibrated(ar: float) -> None:
    model = RelationModel(**PERSISTENT)
    scores = np.array([model.score_learn_one(x) for x in rows(machine(40_000, seed=5, ar=ar))])
    share = float((scores[2000:] >= 0.9999).mean())
    print(f"clean, persistence, ar={ar}: {100 * share:.4f} % of readings score >= 0.9999")
    assert share < 0.005
    assert float((scores[2000:] >= 0.99).mean()) < 0.04  # two tails at 1 % each, and noise


def test_persistence_scores_on_the_sensors_there_and_pickles_exactly() -> None:
    model = RelationModel(**PERSISTENT)
    data = machine(2500, seed=4)
    data[2200:, SENSORS.index("current")] += 1.5 * RESIDUAL_SD[SENSORS.index("current")]
    for i, x in enumerate(rows(data)):
        if i < 800:
            del x["vibration"]  # appears later
        if i % 7 == 0:
            del x["temp"]  # intermittent
        if i == 2300:
            copy = pickle.loads(pickle.dumps(model))
        if i >= 2300:
            assert copy.score_learn_one(dict(x)) == model.score_learn_one(x)
            assert copy.last_contributions == model.last_contributions
            continue
        score = model.score_learn_one(x)
        assert 0.0 <= score < 1.0
        assert set(model.last_contributions) <= set(x)
    assert model._persistence is not None and model._persistence.n.min() > 0  # every sensor
    assert model._persistence.e.tolist() == copy._persistence.e.tolist()


def test_a_checkpoint_from_before_the_persistence_part_restores_without_it() -> None:
    model = warm_model(600)
    state = pickle.loads(pickle.dumps(model.__getstate__()))  # a copy, not shared arrays
    del state["persistence"], state["_persistence"]
    old = RelationModel.__new__(RelationModel)
    old.__setstate__(state)
    x = dict(zip(SENSORS, machine(1, seed=15)[0].tolist()))
    assert old.score_learn_one(dict(x)) == model.score_learn_one(x)
