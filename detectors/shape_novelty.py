"""Novelty of a sensor's recent trajectory, times the rarity of its value: anomstream's default.

Why this design (measured on the NAB corpus, see docs/benchmarks.md):

- Faults show up as *shapes* not seen before — a spike, a level never visited, a flat line, a
  burst of noise. Each reading is described by a coarse picture of the recent trajectory (the
  value and the means of the last `blocks` blocks of `block_size` readings), compared with a
  small library of prototype pictures learned online, adaptive-resonance style
  (`PrototypeLibrary`). Distances are in units of the range seen so far (comparable across
  sensors; a value outside the familiar range is novel by construction) and relative to their
  long-run mean (a sensor that is always a little novel needs more).
- A shape can be new while the value is an old acquaintance (a load spike that comes back every
  few hours): the novelty is multiplied by the value's *rarity* (`ValueHistogram`) raised to
  `rarity_power`. A stuck sensor reads a familiar value, so a run of identical readings on a
  sensor that rarely repeats itself adds its own term.
- A young model meets new shapes all the time (its first load cycles): the surprise is scaled
  by its *maturity*, the recent share of pictures that matched a prototype, and ramps in over
  the `grace` readings after the first `grace`.
- Two slower views add their terms to the surprise. `CoarseScale` runs a second, smaller model
  of this kind over block means (a picture of ~290 readings): drifts and slowly densifying
  spikes are new there while every fast picture resembles the last. `PeriodTracker` learns the
  sensor's cycle from its values (no timestamps) and measures how far the recent mean is from
  the same phase one period ago: a normal value at the wrong moment of the cycle.
- One fault yields many surprising readings, and only the first is news. A *record* — the most
  surprising reading of the last `dead_time` (`RecordGate`) — keeps its score, the tail
  ``exp(-surprise / scale)`` read as a probability; an echo (any other reading) is deflated as
  the most surprising of `_ECHO_READINGS` readings would be (Šidák), and a stuck run is a record
  once, at its start. That the fault persists is evidence of its own, on the same scale
  (`AlertHold`: the tail of the recent mean's deviation from the long-run baseline); a reading
  scores the stronger of the two. No policy threshold is known here: what fires, holds and
  resolves an alert is the alert policy's business (`anomstream.detectors.policy`).

State per sensor (`ShapeState`): under 8 KB pickled with the defaults.
"""

from __future__ import annotations

import math
from itertools import chain
from typing import Any

import numpy as np
from river.base import AnomalyDetector

from anomstream.detectors.alarm_memory import AlarmMemory, signature
from anomstream.detectors.coarse_scale import COARSE_MODEL, CoarseScale
from anomstream.detectors.period_tracker import PeriodTracker
from anomstream.detectors.shape_state import RecentWindow, ShapeState
from anomstream.detectors.spread_channel import SpreadTrack, log_spread, steps_spread

# Comparisons instead of the min/max builtins on the per-reading path: a builtin call costs about
# as much as the arithmetic around it, and `a if a < b else b` gives exactly min(b, a)'s result.
# ruff: noqa: FURB136, PLR1730

__all__ = ["ShapeNovelty"]

_add_reduce = np.add.reduce  # `np.sum` without its Python wrapper

_RARE_REPEATS = 0.05  # sensors repeating a value more often than this are never "stuck"
_REPEAT_ALPHA = 0.002  # weight of the EW share of repeated readings (~500 readings of memory)
# Echoes (surprising readings that are not records) are capped at five nines: above the
# service's alert threshold (0.9999), so a persisting fault keeps its alert open, yet below
# every record worth an alarm of its own (NAB's optimal thresholds here are ~0.999997).
# An echo follows a record that already announced its fault, so it is news only if it would be
# remarkable even as the most surprising of this many readings: its tail p becomes
# 1 - (1 - p)**n (Šidák), ~n * p. 10,000 readings is the horizon of the false-alert budget (at most
# 1 alert per 10,000 clean readings): an echo alone reaches an alerting tail only if it is that rare
# over a whole budget. It is 55 surprise units (scale * ln 10,000) below a record of the same
# surprise: no sensor's burst of echoes outscores its onset. Measured on NAB (docs/benchmarks.md):
# deflating over the dead time only (100 readings) leaves 3.2 % of the clean rows inside an alert
# instead of 1.8 %, and costs 4 raw points.
_ECHO_READINGS = 10_000
_MEMORY_FROM = 30.0  # shape surprises below this are never damped (nor pay for the distances)
_SPREAD_ORDER = 1  # the second-smallest block spread: one or two spiky blocks do not count
_SPREAD_FLOOR = 0.01  # ranges: a flat stretch is calm, not infinitely calm
_SPREAD_WARMUP = 10  # spreads seen before the channel's own statistics mean anything
_LARGEST = 1e38  # readings are clamped to ±this (single-precision parts; see `_reading`)
_NOVELTY_CAP = 10.0  # ranges: the most one picture adds to the long-run mean novelty


def _sidak(tail: float, n: int) -> float:
    """The chance that at least one of `n` independent readings has a tail of `tail` or less.

    >>> round(_sidak(1e-8, 10_000) / 1e-4, 6), _sidak(0.5, 3), _sidak(1.0, 3)
    (0.99995, 0.875, 1.0)
    """
    return -math.expm1(n * math.log1p(-tail)) if tail < 1.0 else 1.0


def _reading(value: Any) -> float:
    """The reading as a float, clamped to ±1e38: prototypes and the cycle's history are single
    precision (largest ~3.4e38), and no sensor reads beyond that."""
    v = float(value)
    if -_LARGEST <= v <= _LARGEST:
        return v
    return v if math.isnan(v) else math.copysign(_LARGEST, v)  # NaN passes through unchanged


class ShapeNovelty(AnomalyDetector):
    """Trajectory novelty times value rarity, deflated unless a record; a score in [0, 1].

    Parameters
    ----------
    block_size
        Readings averaged into one block of the trajectory picture.
    blocks
        Blocks in the picture (with the current value: `blocks + 1` numbers).
    prototypes
        Size of the prototype library per feature.
    vigilance
        Distance (in range units) under which a picture refines its nearest prototype instead
        of becoming a new one.
    learning_rate
        How far a matched prototype moves towards the picture.
    novelty_floor
        Added to the long-run mean novelty before dividing by it; mixes absolute and relative
        novelty (small: mostly relative).
    novelty_alpha
        Weight of the long-run EW mean novelty.
    rarity_bins
        Histogram bins over the range of the first `grace` readings (the grid coarsens itself
        when values spread over more than four times as many).
    rarity_power
        Exponent of the value rarity in the surprise.
    rarity_memory
        Readings between halvings of the histogram counts (old regimes fade out).
    stuck_run
        Identical readings in a row that make a moving sensor "stuck".
    stuck_weight
        A stuck run adds `stuck_weight * stuck_run` to the surprise (constant: one record, one
        alarm; the echoes that follow keep the alert open).
    max_stuck
        Longest run of identical readings still treated as a stuck sensor; beyond it,
        repeating is the sensor's new normal.
    dead_time
        A reading keeps its score only if it is the most surprising of this many readings.
    alarm_surprise
        Shape surprise at which a picture is remembered in `AlarmMemory` (75: a tail of ~4e-6).
    maturity_alpha
        Weight of the EW share of pictures that matched a prototype (the model's maturity).
    coarse_stride
        Readings per block mean fed to the slow view (`CoarseScale`); 0: no slow view.
    coarse_weight
        Weight of the slow view's term in the surprise.
    coarse_steps
        Slow surprises summed into the term (a slow fault is sustained, not a peak).
    coarse_prototypes
        Size of the slow view's prototype library.
    period_weight
        Weight of the cycle term (`PeriodTracker`): a reading whose recent mean is far outside
        what the same phase of the sensor's cycle looked like one period ago; 0: no cycle term.
    period_z
        Deviation (in typical same-phase deviations) above which the cycle term counts.
    period_strength
        Autocorrelation at the period above which the sensor counts as cyclic.
    spread_weight
        Weight of the volatility channel (`spread_channel`): the picture window's sustained
        spread, standardised against its own history; 0: no channel.
    spread_z
        Standardised log spread above which the channel counts.
    spread_alpha
        Weight of the channel's EW mean and variance.
    run_weight
        Added once to the surprise of a sensor that often repeats itself (so not "stuck") when
        a run of identical readings becomes longer than `run_factor` times its longest
        completed run, and at least `run_min_len`: idle for longer than ever.
    run_factor
        See `run_weight`.
    run_min_len
        See `run_weight`.
    run_after
        Readings a sensor must have had before its runs can be "longer than ever".
    memory_size
        Pictures of past alarm-sized shape surprises remembered per sensor (`AlarmMemory`),
        at most one per `dead_time` readings; 0: no memory.
    memory_tau
        Distance (range units) at which a remembered picture's familiarity falls to 1/e.
    memory_weight
        A shape surprise is divided by ``1 + memory_weight * familiarity``.
    scale
        Surprise that maps to a score of 1 - 1/e.
    grace
        Readings per feature learned before any non-zero score; surprise then ramps in over
        as many readings again.

    Examples
    --------
    >>> import math, random
    >>> rng = random.Random(42)
    >>> model = ShapeNovelty()
    >>> for i in range(2000):
    ...     model.learn_one({"value": math.sin(i / 20) + rng.gauss(0, 0.05)})
    >>> model.score_one({"value": math.sin(2000 / 20)}) < 0.99
    True
    >>> model.score_one({"value": 5.0}) > 0.9999999
    True
    """

    def __init__(
        self,
        block_size: int = 9,
        blocks: int = 8,
        prototypes: int = 32,
        vigilance: float = 0.1,
        learning_rate: float = 0.03,
        novelty_floor: float = 0.02,
        novelty_alpha: float = 0.001,
        rarity_bins: int = 20,
        rarity_power: float = 2.0,
        rarity_memory: int = 2000,
        stuck_run: int = 10,
        stuck_weight: float = 10.0,
        max_stuck: int = 2000,
        dead_time: int = 100,
        alarm_surprise: float = 75.0,
        scale: float = 6.0,
        grace: int = 150,
        maturity_alpha: float = 0.01,
        coarse_stride: int = 9,
        coarse_weight: float = 0.4,
        coarse_steps: int = 4,
        coarse_prototypes: int = 24,
        period_weight: float = 10.0,
        period_z: float = 10.0,
        period_strength: float = 0.7,
        spread_weight: float = 10.0,
        spread_z: float = 1.5,
        spread_alpha: float = 0.005,
        run_weight: float = 100.0,
        run_factor: float = 1.2,
        run_min_len: int = 50,
        run_after: int = 600,
        memory_size: int = 8,
        memory_tau: float = 0.02,
        memory_weight: float = 3.0,
    ) -> None:
        self.block_size = block_size
        self.blocks = blocks
        self.prototypes = prototypes
        self.vigilance = vigilance
        self.learning_rate = learning_rate
        self.novelty_floor = novelty_floor
        self.novelty_alpha = novelty_alpha
        self.rarity_bins = rarity_bins
        self.rarity_power = rarity_power
        self.rarity_memory = rarity_memory
        self.stuck_run = stuck_run
        self.stuck_weight = stuck_weight
        self.max_stuck = max_stuck
        self.dead_time = dead_time
        self.alarm_surprise = alarm_surprise
        self.scale = scale
        self.grace = grace
        self.maturity_alpha = maturity_alpha
        self.coarse_stride = coarse_stride
        self.coarse_weight = coarse_weight
        self.coarse_steps = coarse_steps
        self.coarse_prototypes = coarse_prototypes
        self.period_weight = period_weight
        self.period_z = period_z
        self.period_strength = period_strength
        self.spread_weight = spread_weight
        self.spread_z = spread_z
        self.spread_alpha = spread_alpha
        self.run_weight = run_weight
        self.run_factor = run_factor
        self.run_min_len = run_min_len
        self.run_after = run_after
        self.memory_size = memory_size
        self.memory_tau = memory_tau
        self.memory_weight = memory_weight
        self._features: dict[Any, ShapeState] = {}
        self._coarse = self._slow_view()
        self._windows = self._window_cache()

    @staticmethod
    def _window_cache() -> dict[int, RecentWindow]:
        """Each sensor's `RecentWindow`, by `id` of its state (`ShapeState` has no room for it:
        its slots are its pickle). An entry names its state's ring, so a recycled id is a miss."""
        return {}

    def _slow_view(self) -> CoarseScale | None:
        if self.coarse_stride <= 0:
            return None
        slow = ShapeNovelty(**COARSE_MODEL, prototypes=self.coarse_prototypes)
        return CoarseScale(slow, self.coarse_stride, self.coarse_steps)

    # The slow view is built from the parameters: leaving it out of the pickle saves ~0.9 KB
    # of every sensor's checkpoint. The window cache is rebuilt from the rings.
    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_coarse", "_windows")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._coarse = self._slow_view()
        self._windows = self._window_cache()

    @classmethod
    def _unit_test_params(cls) -> Any:
        yield {}
        yield {
            "block_size": 2,
            "blocks": 4,
            "prototypes": 8,
            "dead_time": 50,
            "grace": 10,
            "stuck_run": 3,
        }

    # -- the picture and its novelty (pure) ------------------------------------------------------
    def _window(self, s: ShapeState, v: float) -> np.ndarray | None:
        """The readings `ring + [v]` as one array, oldest first; None until the ring is full.
        The picture is made of its last `blocks * block_size` readings, the volatility channel
        of the steps between all of them. Built afresh on the pure path and in the slow view;
        `_learn` keeps it up to date instead (`_recent_window`)."""
        ring = s.ring
        n = len(ring)
        if n < self.blocks * self.block_size:
            return None
        return np.fromiter(chain(ring, (v,)), float, n + 1)  # faster than np.array on a list

    def _picture(self, s: ShapeState, v: float) -> np.ndarray | None:
        """The value and the means of the last `blocks` blocks, newest block first; None until
        the ring is full."""
        window = self._window(s, v)
        return None if window is None else self._picture_of(window, v)

    def _picture_of(self, window: np.ndarray, v: float) -> np.ndarray:
        """`_picture` from the reading's `_window` (which ends with `v`)."""
        blocks, size = self.blocks, self.block_size
        grid = window[1:]  # a view: the oldest reading is only the first step's start
        grid.shape = (blocks, size)
        picture = np.empty(blocks + 1)
        # `np.add.reduce(...) / size` is exactly what `grid.mean(axis=1)` computes, without
        # `mean`'s Python-level dispatch; reducing the rows in reverse puts the newest block first
        # without another array. Positional (axis, dtype, out): keywords cost ~0.5 us a call
        # (numpy's stubs only know `out` as a keyword).
        means = picture[:blocks]
        _add_reduce(grid[::-1], 1, None, means)  # type: ignore[call-overload]
        means /= size
        picture[blocks] = v
        return picture

    @staticmethod
    def _novelty(s: ShapeState, picture: np.ndarray) -> tuple[float, int]:
        """(distance to the nearest prototype in range units, its index or -1)."""
        distance, j = s.library.nearest(picture)
        if j < 0:
            return 1.0, -1
        # the range *before* this reading: a value far outside it is far in range units
        span = s.hi - s.lo
        return distance / (1e-9 if 1e-9 > span else span), j  # max(span, 1e-9)

    def _shape_surprise(self, s: ShapeState, novelty: float, rarity: float) -> float:
        """Relative shape novelty times value rarity (`rarity` = `s.values.rarity(v)`): both
        must be unusual to score high."""
        surprise = novelty / (self.novelty_floor + s.avg) * rarity**self.rarity_power
        # a model that still meets new shapes all the time cannot tell a fault from its own
        # ignorance (the first load cycles): its surprise counts for less
        grace = self.grace
        ramp = (s.n - grace) / grace
        return surprise * s.maturity * (ramp if ramp < 1.0 else 1.0)  # min(1.0, ramp)

    def _surprise(self, s: ShapeState, picture: np.ndarray, shape: float, v: float) -> float:
        """The surprise of reading `v`, from its shape surprise.

        A picture the sensor has alarmed on before counts for less (`AlarmMemory`). A stuck
        sensor reads a familiar value, so rarity would hide it: a run of identical readings on
        a sensor that rarely repeats itself adds its own term; on one that often does, a run
        longer than ever does.
        """
        surprise = shape
        alarms = s.alarms
        if shape >= _MEMORY_FROM and alarms is not None and self.memory_weight:
            familiarity = alarms.familiarity(signature(picture, s.lo, s.hi), self.memory_tau)
            surprise /= 1.0 + self.memory_weight * familiarity
        ring = s.ring
        repeats = s.repeats + 1 if ring and v == ring[-1] else 0
        if repeats >= self.stuck_run and s.repeat_share < _RARE_REPEATS:
            # constant, not growing with the run: one record (one alarm), then held echoes
            surprise += self.stuck_weight * self.stuck_run
        elif repeats and s.longest_run and self.run_weight and s.n >= self.run_after:
            # a sensor that idles at one value now and then: idle for longer than ever
            longest = int(self.run_factor * s.longest_run) + 1
            if repeats == (longest if longest > self.run_min_len else self.run_min_len):
                surprise += self.run_weight
        return surprise

    # -- the slow terms: the slow view and the cycle ----------------------------------------------
    def _slow_terms(self, s: ShapeState, v: float) -> float:
        """What the slow view and the cycle add to reading `v`'s surprise (pure)."""
        extra = 0.0
        if s.coarse is not None and self._coarse is not None:
            extra = self.coarse_weight * self._coarse.surprise(s.coarse, v)
        if s.cycle is not None and self.period_weight:
            extra += self._period_term(*s.cycle.deviation(v))
        if s.spread is not None and self.spread_weight:
            extra += self._spread_term(s, s.spread, self._log_spread(s, v))
        return extra

    def _learn_slow_terms(self, s: ShapeState, v: float, recent: RecentWindow | None) -> float:
        """Learn reading `v` (`recent`: its window, None until the ring is full) into the slow
        view and the cycle; return `_slow_terms(s, v)`."""
        extra = 0.0
        coarse = self._coarse
        if coarse is not None:
            if s.coarse is None:  # a new sensor, or one restored from an older checkpoint
                s.coarse = coarse.track()
            extra = self.coarse_weight * coarse.learn(s.coarse, v)
        if self.period_weight:
            cycle = s.cycle
            if cycle is None:
                cycle = s.cycle = PeriodTracker()
            extra += self._period_term(*cycle.learn(v))
        if self.spread_weight:
            spread = s.spread
            if spread is None:
                spread = s.spread = SpreadTrack()
            if recent is not None:
                level = steps_spread(
                    recent.steps,
                    self.blocks,
                    self.block_size,
                    _SPREAD_ORDER,
                    s.hi - s.lo,
                    _SPREAD_FLOOR,
                )
                extra += self._spread_term(s, spread, level)
                spread.learn(level, self.spread_alpha)
        return extra

    def _log_spread(self, s: ShapeState, v: float) -> float | None:
        return log_spread(
            s.ring, v, self.blocks, self.block_size, _SPREAD_ORDER, s.hi - s.lo, _SPREAD_FLOOR
        )

    def _spread_term(self, s: ShapeState, spread: SpreadTrack, level: float | None) -> float:
        """The volatility channel's term; scaled, like the shape surprise, by maturity."""
        if level is None or s.n < self.grace or spread.seen < _SPREAD_WARMUP:
            return 0.0
        z = spread.z(level)
        if z <= self.spread_z:
            return 0.0
        ramp = (s.n - self.grace) / self.grace
        return self.spread_weight * (z - self.spread_z) * s.maturity * (ramp if ramp < 1.0 else 1.0)

    def _period_term(self, z: float, strength: float) -> float:
        if strength > self.period_strength and z > self.period_z:
            return self.period_weight * (z - self.period_z)
        return 0.0

    # -- used by `CoarseScale` on the slow view's states -------------------------------------------
    def new_state(self) -> ShapeState:
        return ShapeState(self.blocks + 1)

    def surprise_of(self, s: ShapeState, v: float, extra: float = 0.0) -> float:
        """Reading `v`'s surprise (pure); 0 while there is no picture or in the grace period."""
        if s.n < self.grace:
            return 0.0
        picture = self._picture(s, v)
        if picture is None:
            return 0.0
        novelty, _ = self._novelty(s, picture)
        shape = self._shape_surprise(s, novelty, s.values.rarity(v))
        return self._surprise(s, picture, shape, v) + extra

    def learn_surprise(self, s: ShapeState, v: float) -> float:
        """Learn reading `v` (shape and value, no alarms); return its surprise."""
        surprise = self._learn_shape(s, v, self._window(s, v), s.values.rarity(v), 0.0)
        self._learn_value(s, v)
        return surprise or 0.0

    # -- River API -------------------------------------------------------------------------------
    def score_one(self, x: dict) -> float:
        best = 0.0
        for name, value in x.items():
            s = self._features.get(name)
            # no score before the grace period ends and the ring fills (as in `_learn`)
            if s is None or s.n < self.grace or len(s.ring) < self.blocks * self.block_size:
                continue
            v = _reading(value)
            surprise = self.surprise_of(s, v, self._slow_terms(s, v))
            record = self._is_record(s, surprise, v)
            best = max(best, self._score(s, surprise, record, self._recent(s, v)))
        return best

    def _is_record(self, s: ShapeState, surprise: float, v: float) -> bool:
        """Is reading `v` evidence of its own, not an echo? A record beats the bar; and every
        reading of a stuck run is evidence, as every reading of a held level is: the run goes
        on being wrong (a sensor that rarely repeats itself does not repeat itself this long),
        so its readings keep their tail and its alert stays open while it lasts."""
        ring = s.ring
        if (
            ring
            and v == ring[-1]
            and s.repeats >= self.stuck_run
            and s.repeat_share < _RARE_REPEATS
        ):
            return True
        return surprise > s.records.bar()

    def _score(self, s: ShapeState, surprise: float, record: bool, recent: float) -> float:
        """`recent` is `self._recent(s, v)` for the reading scored."""
        tail = math.exp(-surprise / self.scale)
        if not record:
            tail = _sidak(tail, _ECHO_READINGS)
        hold = s.hold.tail(recent)
        return 1.0 - (hold if hold < tail else tail)  # the stronger evidence: min of the tails

    def _recent(self, s: ShapeState, v: float) -> float:
        """Median of the last `block_size` readings, this one included: the level the sensor
        holds. A median, not a mean: one spike must not look like a level that persists (with
        a mean, the `block_size` readings after a spike all scored as a held level shift)."""
        size = self.block_size
        ring = s.ring
        if len(ring) < size - 1:
            return v
        recent = ring[1 - size :]
        recent.append(v)
        recent.sort()
        return recent[size // 2]

    def learn_one(self, x: dict) -> None:
        for name, value in x.items():
            self._learn(self._state(name), _reading(value))

    def score_learn_one(self, x: dict) -> float:
        """`score_one(x)` then `learn_one(x)` in one pass (the service's hot path)."""
        best = 0.0
        features = self._features
        for name, value in x.items():
            s = features.get(name)  # inline lookup: `_state` only for a new sensor
            score = self._learn(s if s is not None else self._state(name), _reading(value))
            if score > best:  # max(best, score)
                best = score
        return best

    def _state(self, name: Any) -> ShapeState:
        s = self._features.get(name)
        if s is None:
            s = self._features[name] = ShapeState(self.blocks + 1)
        return s

    def _learn(self, s: ShapeState, v: float) -> float:
        """Learn one reading; return the score it had before (what `score_one` gives)."""
        # both read the state as it was before this reading, and are needed twice below
        rarity = s.values.rarity(v)
        recent = self._recent(s, v)
        window = self._recent_window(s, v)  # the picture's and the volatility channel's
        extra = self._learn_slow_terms(s, v, window)
        surprise = self._learn_shape(
            s, v, None if window is None else window.readings, rarity, extra
        )
        score = 0.0
        if surprise is not None:
            if s.n >= self.grace:
                # records, stuck runs and the baseline are not touched by `_learn_shape`
                score = self._score(s, surprise, self._is_record(s, surprise, v), recent)
            s.records.add(surprise, self.dead_time)
        s.hold.update(v)
        self._learn_value(s, v)
        return score

    def _recent_window(self, s: ShapeState, v: float) -> RecentWindow | None:
        """The `RecentWindow` of learning reading `v`; None until the ring is full."""
        ring = s.ring
        if len(ring) < self.blocks * self.block_size:
            return None
        windows = self._windows
        recent = windows.get(id(s))
        if recent is None or not recent.fits(ring, s.n):
            recent = windows[id(s)] = RecentWindow(ring, s.n)
        recent.push(v)
        return recent

    def _learn_shape(
        self, s: ShapeState, v: float, window: np.ndarray | None, rarity: float, extra: float
    ) -> float | None:
        """Learn the picture of reading `v` (novelty mean, maturity, prototypes) from its
        `_window`; return its surprise, 0 in the grace period, None while the ring is not full."""
        if window is None:
            return None
        picture = self._picture_of(window, v)
        novelty, j = self._novelty(s, picture)
        surprise = 0.0
        if s.n >= self.grace:
            shape = self._shape_surprise(s, novelty, rarity)
            surprise = self._surprise(s, picture, shape, v) + extra
            if shape >= self.alarm_surprise and self.memory_size:
                alarms = s.alarms
                if alarms is None:
                    alarms = s.alarms = AlarmMemory(len(picture))
                # in the range *including* this reading: an alarm that widens the range is
                # remembered in the units its repeats will be measured in
                alarms.remember(
                    signature(picture, min(s.lo, v), max(s.hi, v)),
                    s.n,
                    self.memory_size,
                    self.dead_time,
                )
        # capped: while the range is still tiny (a sensor reading 0 for its first hours),
        # one step to a real value is a novelty of ~1e17 ranges, and would poison the
        # long-run mean for the rest of the sensor's life
        capped = novelty if novelty < _NOVELTY_CAP else _NOVELTY_CAP  # min(novelty, cap)
        s.avg += self.novelty_alpha * (capped - s.avg)
        matched = j if novelty < self.vigilance else -1
        s.maturity += self.maturity_alpha * ((matched >= 0) - s.maturity)
        s.library.learn(picture, matched, self.learning_rate, self.prototypes, s.n)
        return surprise

    def _learn_value(self, s: ShapeState, v: float) -> None:
        """The value-level state: repeats, the ring of recent readings, histogram and range."""
        ring = s.ring
        repeated = bool(ring) and v == ring[-1]
        if not repeated and s.repeats > s.longest_run:
            s.longest_run = s.repeats
        s.repeats = repeats = s.repeats + 1 if repeated else 0
        # a stuck run must not teach "this sensor repeats itself" — unless it lasts so long
        # that it is the sensor's new normal
        if not self.stuck_run <= repeats <= self.max_stuck:
            s.repeat_share += _REPEAT_ALPHA * (repeated - s.repeat_share)
        ring.append(v)
        if len(ring) > self.blocks * self.block_size:
            del ring[0]
        n = s.n
        if n == self.grace:
            s.values.start(s.hi - s.lo, self.rarity_bins)
        s.values.add(v, 4 * self.rarity_bins, self.rarity_memory)
        # min(s.lo, v) and max(s.hi, v)
        if v < s.lo:
            s.lo = v
        if v > s.hi:
            s.hi = v
        s.n = n + 1
