"""The alert policy: per-machine state machine from calibrated scores to firing/resolved alerts.

A fault lasts many readings, and a raw threshold would fire on each of them (an alert storm).
Scores are calibrated tail probabilities (0.9999 ~ a 1-in-10,000 reading), and the detector
reports a fault's onset, the readings after it and whether it persists, each on that scale; the
policy alone turns them into alerts:

- it fires on a reading at or above `threshold` once `min_run` consecutive readings have been,
  or at once on a single reading at or above `instant_threshold` (that the machine-wide model,
  if it scored the reading, confirms at `confirm_threshold`);
- once firing, it resolves only after `clear_run` consecutive readings below `clear_threshold`
  (hysteresis: scores bouncing around the threshold keep one alert open);
- after resolving, it ignores the machine for `cooldown` readings, so the tail of a fault does
  not open a second alert.

The defaults follow from a false-alert budget of at most 1 alert per 10,000 clean readings. A
reading at `threshold` = 0.99999 is a 1-in-100,000 event on clean data; `min_run` = 2 such
readings in a row are needed, because the scores are calibrated only roughly (a young model, a
sensor with heavier tails than its detector assumes: single clean readings at 1 - 1e-6 were
measured in the simulator), and one glitching sample must not page anyone; two independent
1-in-100,000 readings in a row are a 1-in-10^10 event. A single reading beyond
`instant_threshold` = 0.9999999 (1 in 10 million) pages at once, so a short spike is not missed.
One reading is one opinion, though, and the per-sensor models' extreme tails are the least
calibrated part of their scores (a value just outside a young model's range is scored as if
never possible). On a machine whose machine-wide model scored the reading, that model's
calibrated tail is a second opinion: a single reading fires at once only if the machine model
scores it at or above `confirm_threshold` = 0.99; otherwise the reading needs `min_run` like
any other. A genuine spike on one sensor breaks its relation to the others as well (its
residual given the others is as far out as the spike), so the machine model finds it unusual,
if not always a 1-in-100,000 event while its own tail is young and wide (a spike of 7 noise
units scored 0.995 after 440 readings, in the simulator); a lone false extreme of a per-sensor
model passes the check on 1 clean reading in 100, a hundredfold cut of such alerts. Measured on
the Tennessee Eastman process (52 variables), every alert of the clean run was such a lone
reading, which the machine model scored 0.76-0.96.
`critical_threshold` = 0.999999 (1 in a million) marks what no clean day explains.
`clear_threshold` = 0.95: a reading more unusual than 1 in 20 is still evidence that the fault is
there (the detector's persistence score of a level two standard deviations off its baseline);
`clear_run` = 30 readings below it in a row resolve the alert. On a clean sensor a 1-in-20
reading comes about every 20 readings, so 30 in a row without one means the evidence has
stopped, while a fault whose evidence comes and goes with a duty cycle (a drift seen at the peaks
of each load cycle) keeps one alert; an alert thus resolves about 30 readings after its evidence
stops.
What holds a firing alert is its own evidence: the scores of the models that implicate its
sensors (a per-sensor model its own sensor, the machine model the sensors holding at least
`MIN_SHARE` of a reading's contributions), not every model of the machine. A machine with 50
sensors has 50 chances per reading for some unrelated sensor to look 1-in-20 unusual, the
more so while its models are young; measured on the Tennessee Eastman process (52 variables),
18 % of clean readings had one, so an alert about one analyser never resolved. A sensor that
reaches `threshold` while the alert fires joins the sensors that hold it: a second fault during
the first keeps the alert open rather than being swallowed by it. The alert's documents keep
the sensors it fired with (they are part of its id). The per-sensor scores are machine-level
tails already (corrected for the machine's sensors), and so is the machine model's: where both
kinds can hold an alert, the holding score is corrected for the two (Bonferroni), so that
`clear_threshold` still means 1 clean reading in 20. Uncorrected, a clean machine reaches it
on about 1 reading in 10 and 30 quiet readings in a row take about four times as long (measured
in the simulator, once its machine models scored every machine: the slowest resolve went from
94-125 readings to 191-261 for level shifts, drifts and stuck sensors).
`cooldown` = 0: the detector already keeps one fault's tail from alerting again (a reading that
is not the most surprising of its dead time is deflated as an echo), so a policy dead time
would only hide the next fault (measured: a false alert followed by a real fault within 100
readings, in the simulator).

Attribution. A reading's score comes from several models: one per sensor, and the machine-wide
model of the relations between sensors, which says how much each sensor contributed. Over the
pending run, every model whose score is at or above `threshold` adds its surprise,
`-log10(1 - score)` (a 1-in-10,000 reading adds 4), to the sensors it implicates: a per-sensor
model to its own sensor, the machine model to each sensor in proportion to that sensor's
contribution. The alert names the sensors holding at least `MIN_SHARE` of that evidence, each
with its share (summing to 1) and the highest score that implicated it. Surprise, not the score
itself, is summed because scores are tail probabilities: 0.9999 and 0.999999 differ by 100x in
rarity, not by 0.01 %.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "COOLDOWN", "FIRING", "MIN_SHARE", "NORMAL", "PENDING", "AlertPolicy", "PolicyState",
    "Transition", "surprise",
]

NORMAL, PENDING, FIRING, COOLDOWN = "normal", "pending", "firing", "cooldown"
# A sensor with less than 1 % of an alert's evidence is not where an operator should look; the
# list stays short on machines with many sensors (the machine model spreads a little evidence
# over every sensor of a relation).
MIN_SHARE = 0.01
_TINY = 1e-16  # 1 - score below float64 resolution near 1: a score of exactly 1.0 adds 16


def surprise(score: float) -> float:
    """`-log10(1 - score)`: 4 for a 1-in-10,000 reading, 16 at most.

    >>> surprise(0.9999), surprise(1.0)
    (4.0, 16.0)
    """
    tail = 1.0 - score
    return round(-math.log10(tail if tail > _TINY else _TINY), 12)


class PolicyState:
    """What the policy remembers about one machine."""

    __slots__ = ("peak", "phase", "run", "sensors", "severity", "started_at", "peaks", "holding")

    def __init__(self) -> None:
        self.phase = NORMAL
        self.run = 0  # pending: anomalous readings so far; firing: clear readings; cooldown: left
        self.started_at = 0.0  # event time of the first anomalous reading of the episode
        self.peak = 0.0
        self.sensors: dict[str, float] = {}  # sensor -> evidence (summed surprise) of the run
        self.severity = ""
        self.peaks: dict[str, float] = {}  # sensor -> highest score that implicated it
        self.holding: list[str] = []  # firing: the sensors whose models' scores hold the alert

    def forget(self, phase: str, run: int = 0) -> None:
        """Leave the episode: enter `phase` with `run`, no evidence, no holding sensors."""
        self.phase, self.run, self.sensors, self.peaks, self.holding = phase, run, {}, {}, []

    def __getstate__(self) -> tuple:
        return tuple(getattr(self, s) for s in self.__slots__)

    def __setstate__(self, state: tuple) -> None:
        # State written before `peaks` existed (a 6-tuple, `sensors` then held peak scores)
        # restores with those peaks as evidence: the names and their order are kept. State
        # written before `holding` (a 7-tuple) holds an open alert by the sensors it fired with.
        self.peaks = {}
        for name, value in zip(self.__slots__, state):
            setattr(self, name, value)
        if len(state) < len(self.__slots__):
            self.holding = list(self.sensors) if self.phase == FIRING else []


@dataclass(frozen=True)
class Transition:
    """A change of alert status the pipeline turns into an alert message."""

    status: str  # "firing" or "resolved"
    severity: str  # "warning" or "critical"
    started_at: float  # event time the anomalous run began: part of the alert id
    score: float  # peak score of the episode
    sensors: Mapping[str, float] = field(default_factory=dict)  # sensor -> share, summing to 1
    sensor_scores: Mapping[str, float] = field(default_factory=dict)  # sensor -> peak score
    # What the alert is about: "anomaly" (this policy), or a sensor-health code ("stuck",
    # "flatline", "railed", "gap", "out_of_range") or "silent", raised by their own trackers.
    kind: str = "anomaly"
    detail: str = ""  # one human line for the kinds that are not scores, e.g. "stuck at 42.0"


@dataclass(frozen=True)
class AlertPolicy:
    """Thresholds and run lengths; see the module docstring.

    Examples
    --------
    >>> policy = AlertPolicy(threshold=0.99, critical_threshold=0.9999, instant_threshold=0.9999,
    ...                      min_run=2, clear_threshold=0.9, clear_run=2, cooldown=1)
    >>> state = PolicyState()
    >>> scores = [0.1, 0.995, 0.999, 0.999, 0.5, 0.5, 0.999, 0.1]
    >>> [t.status if (t := policy.step(state, s, float(i), {"temp": s})) else None
    ...  for i, s in enumerate(scores)]
    [None, None, 'firing', None, None, 'resolved', None, None]

    The machine model implicates sensors by their contributions:

    >>> state = PolicyState()
    >>> joint = (0.999, {"temp": 0.8, "vib": 0.2})
    >>> t = policy.step(state, 0.999, 0.0, {"temp": 0.5, "vib": 0.5}, joint)
    >>> t = policy.step(state, 0.999, 1.0, {"temp": 0.5, "vib": 0.5}, joint)
    >>> t.status, dict(t.sensors), dict(t.sensor_scores)
    ('firing', {'temp': 0.8, 'vib': 0.2}, {'temp': 0.999, 'vib': 0.999})
    """

    threshold: float = 0.99999
    critical_threshold: float = 0.999999
    instant_threshold: float = 0.9999999
    confirm_threshold: float = 0.99
    min_run: int = 2
    clear_threshold: float = 0.95
    clear_run: int = 30
    cooldown: int = 0

    @classmethod
    def from_config(cls, config: Any) -> AlertPolicy:
        """Build from an `AlertsConfig` (or anything with the same attribute names)."""
        return cls(**{name: getattr(config, name) for name in cls.__dataclass_fields__})

    def step(
        self,
        state: PolicyState,
        score: float,
        event_time: float,
        sensor_scores: Mapping[str, float],
        joint: tuple[float, Mapping[str, float]] | None = None,
    ) -> Transition | None:
        """Advance `state` by one reading of its machine; return a transition, if any.

        `score` is the reading's machine score (the highest of its models' scores);
        `sensor_scores` the per-sensor models' scores; `joint` the machine-wide model's score
        and each sensor's contribution to it (summing to 1), if the machine has one.
        """
        phase = state.phase
        if phase == FIRING:
            return self._step_firing(state, self._holding_score(state, score, sensor_scores, joint))
        if phase == COOLDOWN:
            state.run -= 1
            if state.run <= 0:
                state.phase = NORMAL
            return None
        if score < self.threshold:
            if phase == PENDING:
                state.forget(NORMAL)
            return None
        if phase == NORMAL:
            state.phase, state.run, state.started_at, state.peak = PENDING, 0, event_time, 0.0
        state.run += 1
        state.peak = max(state.peak, score)
        self._gather(state, sensor_scores, joint)
        if state.run < self.min_run and not self._instant(score, joint):
            return None
        state.phase, state.run = FIRING, 0
        state.severity = "critical" if state.peak >= self.critical_threshold else "warning"
        state.sensors, state.peaks = _shares(state.sensors, state.peaks)
        state.holding = list(state.sensors)
        return self._transition("firing", state)

    def _holding_score(
        self,
        state: PolicyState,
        score: float,
        sensor_scores: Mapping[str, float],
        joint: tuple[float, Mapping[str, float]] | None,
    ) -> float:
        """The highest score of the models that implicate a sensor holding the firing alert
        (see the module docstring); a sensor at or above `threshold` joins them. An alert that
        names no sensor is held by the machine score."""
        holding = state.holding
        if not holding:
            return score
        best = 0.0
        for sensor, s in sensor_scores.items():
            if s >= self.threshold and sensor not in holding:
                holding.append(sensor)
            if s > best and sensor in holding:
                best = s
        if joint is None or not joint[1]:
            return best
        s, contributions = joint
        if s >= self.threshold or s > best:
            implicated = [n for n, share in contributions.items() if share >= MIN_SHARE]
            if s >= self.threshold:
                holding.extend(n for n in implicated if n not in holding)
            if s > best and any(n in holding for n in implicated):
                best = s
        if not sensor_scores:
            return best
        # Two machine-level tails hold the alert, the per-sensor models' (already corrected
        # for the machine's sensors) and the machine model's: each alone is at or above
        # `clear_threshold` on 1 clean reading in 20, so either on 1 in 10, and an alert would
        # wait for 30 quiet readings in a row about 4 times as long as one tail makes it
        # (Bonferroni over the two, as `per_machine` does over sensors).
        corrected = 1.0 - 2.0 * (1.0 - best)
        return round(corrected, 12) if corrected > 0.0 else 0.0

    def _instant(self, score: float, joint: tuple[float, Mapping[str, float]] | None) -> bool:
        """Does this one reading fire at once? At or above `instant_threshold`, and, when the
        machine-wide model scored it (it reports contributions), confirmed by that model."""
        if score < self.instant_threshold:
            return False
        return joint is None or not joint[1] or joint[0] >= self.confirm_threshold

    def _gather(
        self,
        state: PolicyState,
        sensor_scores: Mapping[str, float],
        joint: tuple[float, Mapping[str, float]] | None,
    ) -> None:
        """Add this reading's evidence to the sensors it implicates (see the module docstring)."""
        threshold, evidence, peaks = self.threshold, state.sensors, state.peaks
        for sensor, s in sensor_scores.items():
            if s >= threshold:
                evidence[sensor] = evidence.get(sensor, 0.0) + surprise(s)
                if s > peaks.get(sensor, 0.0):
                    peaks[sensor] = s
        if joint is not None and joint[0] >= threshold:
            s, contributions = joint
            bits = surprise(s)
            for sensor, share in contributions.items():
                evidence[sensor] = evidence.get(sensor, 0.0) + bits * share
                if share >= MIN_SHARE and s > peaks.get(sensor, 0.0):
                    peaks[sensor] = s

    def resolve_now(self, state: PolicyState) -> Transition | None:
        """End the machine's open alert at once (operator feedback, a maintenance window);
        None when none is open. A pending run is forgotten without an alert."""
        if state.phase != FIRING:
            state.forget(NORMAL)
            return None
        resolved = self._transition("resolved", state)
        state.forget(NORMAL)
        return resolved

    @staticmethod
    def _transition(status: str, state: PolicyState) -> Transition:
        return Transition(
            status, state.severity, state.started_at, state.peak, state.sensors, state.peaks
        )

    def _step_firing(self, state: PolicyState, score: float) -> Transition | None:
        if score >= self.clear_threshold:
            state.run = 0
            state.peak = max(state.peak, score)
            return None
        state.run += 1
        if state.run < self.clear_run:
            return None
        resolved = self._transition("resolved", state)
        state.forget(COOLDOWN, self.cooldown)
        if state.run <= 0:
            state.phase = NORMAL
        return resolved


def _shares(
    evidence: Mapping[str, float], peaks: Mapping[str, float]
) -> tuple[dict[str, float], dict[str, float]]:
    """The sensors with at least `MIN_SHARE` of the evidence, their shares renormalised to sum
    to 1, largest first; and their peak scores."""
    total = sum(evidence.values())
    if total <= 0.0:
        return {}, {}
    kept = {s: e for s, e in evidence.items() if e >= MIN_SHARE * total}
    kept_total = sum(kept.values())
    shares = {s: e / kept_total for s, e in sorted(kept.items(), key=lambda kv: -kv[1])}
    return shares, {s: peaks.get(s, 0.0) for s in shares}
