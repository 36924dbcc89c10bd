"""The parts `ShapeNovelty` gained after its first release, alone and inside the default detector.

`AlarmMemory`, the volatility channel (`log_spread`, `SpreadTrack`), the slow view
(`CoarseScale`), `ShapeState`'s older checkpoints, and what each of them is for, shown on
synthetic sensors: a daily-like cycle of `DAY` readings plus noise, seeded, no broker.
"""

from __future__ import annotations

import math
import pickle
import random
import statistics
import warnings

import numpy as np
import pytest

from anomstream.detectors.alarm_memory import AlarmMemory, signature
from anomstream.detectors.coarse_scale import CoarseTrack
from anomstream.detectors.period_tracker import PeriodTracker
from anomstream.detectors.policy import AlertPolicy, PolicyState
from anomstream.detectors.shape_novelty import _RARE_REPEATS, ShapeNovelty
from anomstream.detectors.shape_state import ShapeState
from anomstream.detectors.spread_channel import SpreadTrack, log_spread

DAY = 288  # readings per synthetic cycle
TROUGH = 3 * DAY // 4  # phase of the sine's minimum
ECHO_CAP = 0.99999  # five nines: the shipped alert threshold (echoes were once capped here)
ALARM = 0.999996  # about the score of `alarm_surprise` (75): 1 - exp(-75 / 6)
WIDTH = 9  # picture width with the defaults: 8 block means and the value
TAU = 0.02  # `memory_tau`'s default


# -- helpers ------------------------------------------------------------------------------------
def cycle_value(i: int, rng: random.Random, noise: float = 0.3) -> float:
    """Reading `i` of a sine of period `DAY` from 5 to 15, plus Gaussian noise."""
    return 10 + 5 * math.sin(2 * math.pi * i / DAY) + rng.gauss(0, noise)


def pure_surprise(model: ShapeNovelty, v: float) -> float:
    """The surprise `score_one` would give reading `v` of sensor "value" (pure; 0 when none)."""
    s = model._features.get("value")
    if s is None or s.n < model.grace or len(s.ring) < model.blocks * model.block_size:
        return 0.0
    return model.surprise_of(s, v, model._slow_terms(s, v))


def score_all(model: ShapeNovelty, values: list[float]) -> list[float]:
    return [model.score_learn_one({"value": v}) for v in values]


def surprises_and_scores(model: ShapeNovelty, values: list[float]) -> list[tuple[float, float]]:
    """(surprise before learning, score) per reading."""
    out = []
    for v in values:
        surprise = pure_surprise(model, v)
        out.append((surprise, model.score_learn_one({"value": v})))
    return out


def random_walk(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    values, v = [], 0.0
    for _ in range(n):
        v += rng.gauss(0, 1)
        values.append(v)
    return values


# -- AlarmMemory --------------------------------------------------------------------------------
def some_picture(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, WIDTH)


def test_empty_memory_is_not_familiar_with_anything() -> None:
    assert AlarmMemory(WIDTH).familiarity(some_picture(0), TAU) == 0.0


@pytest.mark.parametrize("copies", [1, 2, 3])
def test_an_identical_picture_is_familiar_once_per_remembered_copy(copies: int) -> None:
    picture = some_picture(1)
    memory = AlarmMemory(WIDTH)
    for k in range(copies):
        memory.remember(picture, now=1000 * k, size=8, gap=100)
    # single-precision storage leaves a distance of ~1e-8 ranges: exp(-1e-12) per copy
    assert memory.familiarity(picture, TAU) == pytest.approx(copies, rel=1e-6)


def test_a_picture_ten_taus_away_is_not_familiar() -> None:
    picture = some_picture(2)
    memory = AlarmMemory(WIDTH)
    memory.remember(picture, now=0, size=8, gap=100)
    # every coordinate 10 tau off: a root-mean-square distance of 10 tau, exp(-100)
    assert memory.familiarity(picture + 10 * TAU, TAU) < 1e-40
    # and the comparison is in distance, not in some coordinate order: 1 tau is 1/e
    assert memory.familiarity(picture + TAU, TAU) == pytest.approx(math.exp(-1), rel=1e-4)


def test_remember_keeps_at_most_one_picture_per_gap() -> None:
    memory = AlarmMemory(WIDTH)
    memory.remember(some_picture(3), now=500, size=8, gap=100)
    memory.remember(some_picture(4), now=599, size=8, gap=100)  # 99 readings later: dropped
    assert len(memory.pictures) == 1
    assert memory.last == 500
    assert memory.familiarity(some_picture(4), TAU) < 1e-6  # it really was not kept
    memory.remember(some_picture(5), now=600, size=8, gap=100)  # a full gap later: kept
    assert len(memory.pictures) == 2
    assert memory.last == 600


@pytest.mark.parametrize(
    "size",
    [1, 2, 3, 4, 8],
)
def test_remember_keeps_only_the_newest_pictures(size: int) -> None:
    memory = AlarmMemory(WIDTH)
    pictures = [some_picture(10 + k) for k in range(size + 4)]
    for k, picture in enumerate(pictures):
        memory.remember(picture, now=100 * k, size=size, gap=100)
        assert len(memory.pictures) == min(k + 1, size)
    # oldest first, the oldest dropped
    expected = np.array(pictures[-size:], np.float32)
    np.testing.assert_array_equal(memory.pictures, expected)
    assert memory.familiarity(pictures[0], TAU) < 1e-6


def test_alarm_memory_pickles_its_pictures_in_single_precision() -> None:
    memory = AlarmMemory(WIDTH)
    for k in range(3):
        memory.remember(some_picture(20 + k), now=1234 + 100 * k, size=8, gap=100)
    restored = pickle.loads(pickle.dumps(memory))
    assert restored.pictures.dtype == np.float32
    np.testing.assert_array_equal(restored.pictures, memory.pictures)
    assert restored.last == memory.last == 1434
    probe = some_picture(21) + 0.5 * TAU
    assert restored.familiarity(probe, TAU) == memory.familiarity(probe, TAU)
    # the restored array is writable and its own (frombuffer alone would give a read-only view)
    restored.remember(some_picture(30), now=2000, size=8, gap=100)
    assert len(restored.pictures) == 4


def test_an_empty_alarm_memory_pickles_too() -> None:
    restored = pickle.loads(pickle.dumps(AlarmMemory(WIDTH)))
    assert restored.pictures.shape == (0, WIDTH)
    assert restored.familiarity(some_picture(0), TAU) == 0.0


def test_signature_is_the_picture_in_range_units() -> None:
    picture = np.array([2.0, 7.0, 12.0, 4.5])
    np.testing.assert_allclose(signature(picture, 2.0, 12.0), [0.0, 0.5, 1.0, 0.25])


def test_signature_survives_an_empty_range() -> None:
    picture = np.array([3.0, 3.0, 3.5])
    with np.errstate(all="raise"):  # no division by zero, no overflow
        seen = signature(picture, 3.0, 3.0)
    assert np.all(np.isfinite(seen))
    assert seen[0] == seen[1] == 0.0


# -- the volatility channel ---------------------------------------------------------------------
BLOCKS, SIZE, SPAN, FLOOR = 8, 9, 10.0, 0.01  # ShapeNovelty's picture window and channel floor


def channel(window: list[float], order: int = 1) -> float:
    """`log_spread` of a window of `BLOCKS * SIZE + 1` readings (the ring and the new one)."""
    level = log_spread(window[:-1], window[-1], BLOCKS, SIZE, order, SPAN, FLOOR)
    assert level is not None  # a full window always has a spread
    return level


def calm_window(seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [5.0 + rng.gauss(0, 0.02) for _ in range(BLOCKS * SIZE + 1)]


def test_log_spread_is_none_until_the_ring_is_full() -> None:
    window = calm_window()
    short = window[: BLOCKS * SIZE - 1]
    assert log_spread(short, 5.0, BLOCKS, SIZE, 1, SPAN, FLOOR) is None
    assert log_spread([], 5.0, BLOCKS, SIZE, 1, SPAN, FLOOR) is None
    assert isinstance(channel(window), float)


@pytest.mark.parametrize("at", [30, 36], ids=["inside-a-block", "on-a-block-boundary"])
def test_one_spike_barely_moves_the_log_spread(at: int) -> None:
    calm = calm_window()
    spiky = calm.copy()
    spiky[at] += 5.0  # half the range; its two steps land in one block or in two
    base = channel(calm)
    # the second-smallest block ignores one or two spiky blocks ...
    assert abs(channel(spiky) - base) < 0.05
    # ... which the largest one does not: the spike is big enough to matter
    assert channel(spiky, order=BLOCKS - 1) - channel(calm, order=BLOCKS - 1) > 1.0


def test_noise_filling_the_window_raises_the_log_spread() -> None:
    rng = random.Random(1)
    calm = calm_window()
    noisy = [v + rng.gauss(0, 0.5) for v in calm]
    assert channel(noisy) - channel(calm) > 1.0


def test_spread_track_starts_as_the_plain_mean_and_variance() -> None:
    values = [0.3, -1.2, 2.5, 0.7, 1.1]
    track = SpreadTrack()
    for v in values:
        track.learn(v, alpha=0.005)  # 1/t exceeds alpha for the first 200 values
    assert track.seen == 5
    assert track.mean == pytest.approx(statistics.fmean(values), rel=1e-12)
    assert track.var == pytest.approx(statistics.pvariance(values), rel=1e-12)
    assert track.z(track.mean + 2.0) == pytest.approx(2.0 / math.sqrt(track.var + 1e-6))


def test_spread_track_settles_on_alpha() -> None:
    track = SpreadTrack()
    for _ in range(1000):
        track.learn(1.0, alpha=0.01)
    track.learn(11.0, alpha=0.01)  # 1/1001 < alpha: the weight is alpha
    assert track.mean == pytest.approx(1.0 + 0.01 * 10.0, rel=1e-12)


def test_spread_track_pickles() -> None:
    track = SpreadTrack()
    for v in (0.1, 0.4, -0.3):
        track.learn(v, alpha=0.005)
    restored = pickle.loads(pickle.dumps(track))
    assert (restored.mean, restored.var, restored.seen) == (track.mean, track.var, track.seen)
    assert restored.z(1.0) == track.z(1.0)


# -- the slow view ------------------------------------------------------------------------------
def slow_view_series(seed: int) -> list[float]:
    """Ten cycles and a bit, then 1,000 readings drifting upwards: something for the slow view."""
    rng = random.Random(seed)
    values = [cycle_value(i, rng) for i in range(3000)]
    return values + [v + 0.004 * k for k, v in enumerate(cycle_value(i, rng) for i in range(1000))]


def test_coarse_surprise_is_what_learn_returns_and_only_on_block_ends() -> None:
    detector = ShapeNovelty()
    coarse = detector._coarse
    assert coarse is not None
    stride = detector.coarse_stride
    track = coarse.track()
    assert isinstance(track, CoarseTrack)
    nonzero = 0
    for i, v in enumerate(slow_view_series(seed=5), start=1):
        before = pickle.dumps(track)
        predicted = coarse.surprise(track, v)
        assert pickle.dumps(track) == before, f"surprise changed the track at reading {i}"
        learned = coarse.learn(track, v)
        assert predicted == learned, f"reading {i}"
        if i % stride:
            assert learned == 0.0, f"reading {i} does not complete a block"
        else:
            nonzero += learned > 0.0
    # the block ends do carry a term once the slow model is past its grace: not a vacuous check
    assert nonzero > 200


# -- ShapeState and older checkpoints -----------------------------------------------------------
OLD_FIELDS = 12  # the slots of the first release: avg .. values


class _OldCheckpoint:
    """Pickles as a `ShapeState` whose state tuple is `fields`, like an older release wrote it."""

    def __init__(self, fields: tuple) -> None:
        self.fields = fields

    def __reduce__(self) -> tuple:
        return (object.__new__, (ShapeState,), self.fields)


def restore_old(state: ShapeState, fields: int = OLD_FIELDS) -> ShapeState:
    return pickle.loads(pickle.dumps(_OldCheckpoint(state.__getstate__()[:fields])))


def test_a_first_release_state_restores_with_the_later_parts_not_started() -> None:
    fresh = ShapeState(WIDTH)
    assert len(fresh.__getstate__()) == len(ShapeState.__slots__) > OLD_FIELDS
    # later parts that are set, so that "restored as not started" cannot be a mere copy
    coarse = ShapeNovelty()._coarse
    assert coarse is not None
    fresh.coarse = coarse.track()
    fresh.cycle = PeriodTracker()
    fresh.spread = SpreadTrack()
    fresh.longest_run = 42
    fresh.alarms = AlarmMemory(WIDTH)
    restored = restore_old(fresh)
    assert isinstance(restored, ShapeState)
    assert restored.coarse is None
    assert restored.cycle is None
    assert restored.spread is None
    assert restored.alarms is None
    assert restored.longest_run == 0
    # the old fields are where they were
    assert restored.n == 0
    assert restored.lo == math.inf
    assert restored.ring == []


@pytest.mark.parametrize("fields", range(OLD_FIELDS, len(ShapeState.__slots__) + 1))
def test_each_missing_later_part_starts_afresh(fields: int) -> None:
    detector = ShapeNovelty()
    score_all(detector, random_walk(1500, seed=3))
    state = detector._features["value"]
    state.longest_run = 7  # something to tell "kept" from "started afresh"
    restored = restore_old(state, fields)
    for k, name in enumerate(ShapeState.__slots__):
        kept = getattr(restored, name)
        if k < fields:
            assert pickle.dumps(kept) == pickle.dumps(getattr(state, name)), name
        else:
            assert kept == (0 if name == "longest_run" else None), name


def test_a_detector_keeps_working_on_a_restored_first_release_state() -> None:
    values = random_walk(4000, seed=4)
    detector = ShapeNovelty()
    score_all(detector, values[:2000])
    detector._features["value"] = restore_old(detector._features["value"])
    twin = pickle.loads(pickle.dumps(detector))  # scored with score_one then learn_one
    for v in values[2000:]:
        x = {"value": v}
        expected = twin.score_one(x)
        twin.learn_one(x)
        score = detector.score_learn_one(x)
        assert 0.0 <= score <= 1.0
        assert score == expected
    s = detector._features["value"]
    assert s.coarse is not None and s.cycle is not None and s.spread is not None
    assert s.coarse.state.n > 0 and s.spread.seen > 0  # learning, from scratch
    assert s.n == 4000  # the old parts kept counting


# -- the default detector on synthetic sensors --------------------------------------------------
NORMAL = 24 * DAY  # 6,912 readings of normal behaviour before each event


def wrong_phase_series(seed: int, inject: bool) -> tuple[list[float], range]:
    """A cycle; on day 25, the peak value (15) for 12 readings around the trough."""
    rng = random.Random(seed)
    event = range(NORMAL + TROUGH - 6, NORMAL + TROUGH + 6)
    values = []
    for i in range(NORMAL + DAY):
        v = cycle_value(i, rng)
        values.append(15.0 + rng.gauss(0, 0.3) if inject and i in event else v)
    return values, event


def test_the_peak_value_at_the_trough_alarms() -> None:
    values, event = wrong_phase_series(seed=0, inject=True)
    detector = ShapeNovelty()
    scores = score_all(detector, values[: event.start])
    s = detector._features["value"]
    assert s.cycle is not None and s.cycle.period == DAY // 4  # blocks of 4: it knows the day
    cycle_terms = []
    for v in values[event.start : event.stop]:
        cycle_terms.append(detector._period_term(*s.cycle.deviation(v)))
        scores.append(detector.score_learn_one({"value": v}))
    assert max(scores[event.start : event.stop]) >= ECHO_CAP
    # it is the cycle that objects: 15 is an ordinary value, only not at this time of day
    assert max(cycle_terms) > detector.alarm_surprise

    normal, _ = wrong_phase_series(seed=0, inject=False)
    quiet = score_all(ShapeNovelty(), normal[: event.stop])
    assert max(quiet[event.start : event.stop]) < ECHO_CAP


def volatile_series(seed: int, factor: float) -> tuple[list[float], int]:
    """A cycle whose noise grows `factor` times (same mean) after `NORMAL` readings."""
    rng = random.Random(seed)
    values = [cycle_value(i, rng) for i in range(NORMAL)]
    values += [cycle_value(i, rng, noise=0.3 * factor) for i in range(NORMAL, NORMAL + 200)]
    return values, NORMAL


def test_noise_growing_eightfold_alarms_early() -> None:
    values, start = volatile_series(seed=0, factor=8.0)
    detector = ShapeNovelty()
    scores = score_all(detector, values[:start])
    # the volatility channel itself sees it (not only the wide values reaching new ranges)
    s = detector._features["value"]
    terms = []
    for v in values[start : start + 80]:
        spread = s.spread
        assert spread is not None
        terms.append(detector._spread_term(s, spread, detector._log_spread(s, v)))
        scores.append(detector.score_learn_one({"value": v}))
    assert max(scores[start : start + 80]) >= ECHO_CAP
    assert max(terms) > 20.0

    calm, _ = volatile_series(seed=0, factor=1.0)
    quiet = score_all(ShapeNovelty(), calm[: start + 80])
    assert max(quiet[start : start + 80]) < ECHO_CAP


def idling_series(seed: int, long_run: int) -> tuple[list[float], list[int], int]:
    """A cycle that idles at exactly 0.0 for 20 readings every ~100, then for `long_run`.

    Every ~100, not ~200: `_learn_value` does not count the repeats of a run beyond `stuck_run`
    (10) into the repeat share, so a 20-reading idle adds only 9 repeats; every ~200 readings
    that is a share of ~0.045, under `_RARE_REPEATS` (0.05), and the stuck rule would be on.
    """
    rng = random.Random(seed)
    values: list[float] = []
    starts: list[int] = []
    next_idle = 100
    while len(values) < NORMAL:
        if len(values) >= next_idle:
            starts.append(len(values))
            values += [0.0] * 20
            next_idle = len(values) + 100 + rng.randint(-15, 15)
        else:
            values.append(cycle_value(len(values), rng))
    values += [cycle_value(len(values), rng) for _ in range(60)]  # not right after a short run
    long_start = len(values)
    values += [0.0] * long_run
    return values, starts, long_start


def test_idling_longer_than_ever_alarms_once_usual_idles_do_not() -> None:
    values, starts, long_start = idling_series(seed=0, long_run=120)
    detector = ShapeNovelty()
    s = None
    shares = []
    scores = []
    for i, v in enumerate(values):
        if i in starts:
            s = detector._features["value"]
            shares.append(s.repeat_share)
        scores.append(detector.score_learn_one({"value": v}))
    # the premise: it repeats itself often enough that the stuck rule is off
    assert min(shares[len(shares) // 3 :]) > _RARE_REPEATS
    # the usual idles (and everything between them) stay below an alarm after the warm-up
    assert max(scores[2000:long_start]) < ECHO_CAP
    assert s is not None and s.longest_run == 19
    # the long idle: at max(1.2 * 19 + 1, run_min_len = 50) repeats, reading 51 of the run
    long_scores = scores[long_start:]
    assert max(long_scores) >= ECHO_CAP
    # once: the rule fires at one exact run length, the rest of the run are echoes
    assert [k for k, score in enumerate(long_scores) if score > ALARM] == [50]


SPIKE = 40.0


def repeated_shape_series(
    seed: int, gap: int = 500, copies: int = 5
) -> tuple[list[float], list[int]]:
    """A cycle, and every `gap` readings from `NORMAL` on the same 83 readings: a fixed run-up
    of 80 (drawn once) and a three-reading spike to `SPIKE`. Returns the spikes' indices.

    The whole picture (72 readings) must repeat for `AlarmMemory` to know it, and so must the
    range it is measured in: an early one-off excursion (reading 1,000, above the spike) sets
    the range, so the spikes do not extend it (the test after next is about when they do).
    """
    rng = random.Random(seed)
    run_up = [10 + rng.gauss(0, 1.0) for _ in range(80)]
    shape = [*run_up, SPIKE, 0.8 * SPIKE, 0.5 * SPIKE]
    starts = [NORMAL + k * gap for k in range(copies)]
    values: list[float] = []
    while len(values) < starts[-1] + 100:
        i = len(values)
        if i in starts:
            values += shape
        else:
            values.append(SPIKE + 5 if i == 1000 else cycle_value(i, rng))
    return values, [a + len(run_up) for a in starts]


def test_alarm_memory_damps_the_repeats_of_one_excursion() -> None:
    values, peaks = repeated_shape_series(seed=0)
    remembering = surprises_and_scores(ShapeNovelty(), values)
    forgetting = surprises_and_scores(ShapeNovelty(memory_size=0), values)
    first, *later = peaks
    # the first of a kind is unknown to the memory: full strength, an alarm, either way (the
    # early excursion is remembered too, but its picture is far: familiarity ~1e-10)
    assert remembering[first][0] == pytest.approx(forgetting[first][0], rel=1e-6)
    assert remembering[first][1] == forgetting[first][1]
    assert remembering[first][1] > ALARM
    for p in later:
        damped, plain = remembering[p][0], forgetting[p][0]
        assert damped < 0.5 * plain, f"copy at {p}: {damped:.1f} vs {plain:.1f}"
        assert damped < 0.25 * remembering[first][0]
        # no new alarm for a known excursion; without the memory each copy alarms again
        assert remembering[p][1] < ECHO_CAP
        assert forgetting[p][1] > ALARM


def test_an_identical_repeat_of_a_range_extending_alarm_is_familiar() -> None:
    values, peaks = repeated_shape_series(seed=0, copies=2)
    values[1000] = cycle_value(1000, random.Random(0))  # no early excursion: the spike is new
    detector = ShapeNovelty()
    score_all(detector, values[: peaks[0]])
    s = detector._features["value"]
    first = detector._picture(s, values[peaks[0]])
    assert first is not None and s.hi < SPIKE  # the first spike will extend the range
    score_all(detector, values[peaks[0] : peaks[1]])
    repeat = detector._picture(s, values[peaks[1]])
    assert repeat is not None
    np.testing.assert_allclose(repeat, first, rtol=1e-12)  # the very same picture ...
    # ... and the first was remembered in the range it widened, the one its repeat is measured
    # in (remembered in the range from before it, the repeat would be a stranger: familiarity 0)
    assert s.alarms is not None
    assert s.alarms.familiarity(signature(repeat, s.lo, s.hi), detector.memory_tau) > 0.5


def test_a_climbing_burst_alerts_once() -> None:
    rng = random.Random(0)
    start = 20 * DAY + 240  # on the way up out of a trough, after 6,000 normal readings
    values = [cycle_value(i, rng) for i in range(start)]
    burst = [18.0, 21.0, 24.0, 27.0, 30.0]  # above the cycle's 5..15, each a bit higher
    detector = ShapeNovelty()
    score_all(detector, values)
    out = surprises_and_scores(detector, burst)
    first_surprise, first_score = out[0]
    assert first_score > ALARM
    # the burst climbs: later readings beat the first one's surprise, and the detector reports
    # them as the records they are; one alert for the burst is the policy's business
    assert max(surprise for surprise, _ in out[1:]) > 1.1 * first_surprise
    policy, state = AlertPolicy(), PolicyState()
    steps = [policy.step(state, score, float(k), {"value": score}) for k, (_, score) in enumerate(out)]
    assert [(k, t.status) for k, t in enumerate(steps) if t is not None] == [(0, "firing")]


# -- purity -------------------------------------------------------------------------------------
def test_score_one_is_pure_and_agrees_with_score_learn_one() -> None:
    detector = ShapeNovelty()
    scores = []
    for v in random_walk(3000, seed=6):
        x = {"value": v}
        before = pickle.dumps(detector)
        predicted = detector.score_one(x)
        assert pickle.dumps(detector) == before, "score_one changed the model's state"
        scores.append(detector.score_learn_one(x))
        assert scores[-1] == predicted
    # the walk reaches the interesting paths: alarms, echoes, the slow view
    assert max(scores) > ALARM
    s = detector._features["value"]
    assert s.alarms is not None and s.coarse is not None and s.spread is not None


# -- robustness ---------------------------------------------------------------------------------
def test_readings_beyond_single_precision_neither_warn_nor_break_the_scores() -> None:
    # prototypes and the cycle's history are float32 (largest ~3.4e38): readings are clamped
    rng = random.Random(1)
    detector = ShapeNovelty()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = [
            detector.score_learn_one({"value": rng.choice([1e300, -1e300, 0.0, 1.0])})
            for _ in range(3000)
        ]
    assert all(0.0 <= score <= 1.0 for score in scores)
