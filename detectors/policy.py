"""The alert policy: per-machine state machine from calibrated scores to firing/resolved alerts.

A fault lasts many readings, and a raw threshold would fire on each of them (an alert storm) and
on single noisy readings (false alarms). The policy therefore

- fires only after `min_run` consecutive readings at or above `threshold`, or at once on a
  single reading at or above `instant_threshold` (a short spike must not slip through);
- once firing, resolves only after `clear_run` consecutive readings below `clear_threshold`
  (hysteresis: scores bouncing around the threshold keep one alert open);
- after resolving, ignores the machine for `cooldown` readings, so the tail of a fault does not
  open a second alert.

One fault thus gives exactly one `firing` and one `resolved` transition. The state is a small
slotted object per machine, kept by the caller (the pipeline), so it can be checkpointed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["COOLDOWN", "FIRING", "NORMAL", "PENDING", "AlertPolicy", "PolicyState", "Transition"]

NORMAL, PENDING, FIRING, COOLDOWN = "normal", "pending", "firing", "cooldown"


class PolicyState:
    """What the policy remembers about one machine."""

    __slots__ = ("peak", "phase", "run", "sensors", "severity", "started_at")

    def __init__(self) -> None:
        self.phase = NORMAL
        self.run = 0  # pending: anomalous readings so far; firing: clear readings; cooldown: left
        self.started_at = 0.0  # event time of the first anomalous reading of the episode
        self.peak = 0.0
        self.sensors: dict[str, float] = {}  # sensor -> highest score in the pending run
        self.severity = ""

    def __getstate__(self) -> tuple:
        return tuple(getattr(self, s) for s in self.__slots__)

    def __setstate__(self, state: tuple) -> None:
        for name, value in zip(self.__slots__, state):
            setattr(self, name, value)


@dataclass(frozen=True)
class Transition:
    """A change of alert status the pipeline turns into an alert message."""

    status: str  # "firing" or "resolved"
    severity: str  # "warning" or "critical"
    started_at: float  # event time the anomalous run began: part of the alert id
    score: float  # peak score of the episode
    sensors: Mapping[str, float] = field(default_factory=dict)


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
    """

    threshold: float = 0.9999
    critical_threshold: float = 0.999999
    instant_threshold: float = 0.9999999
    min_run: int = 3
    clear_threshold: float = 0.95
    clear_run: int = 20
    cooldown: int = 50

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
    ) -> Transition | None:
        """Advance `state` by one reading of its machine; return a transition, if any.

        `score` is the reading's machine score (highest sensor score); `sensor_scores` the
        per-sensor scores, of which those at or above the threshold are named in the alert.
        """
        phase = state.phase
        if phase == FIRING:
            return self._step_firing(state, score)
        if phase == COOLDOWN:
            state.run -= 1
            if state.run <= 0:
                state.phase = NORMAL
            return None
        if score < self.threshold:
            if phase == PENDING:
                state.phase, state.run, state.sensors = NORMAL, 0, {}
            return None
        if phase == NORMAL:
            state.phase, state.run, state.started_at, state.peak = PENDING, 0, event_time, 0.0
        state.run += 1
        state.peak = max(state.peak, score)
        for sensor, s in sensor_scores.items():
            if s >= self.threshold and s > state.sensors.get(sensor, 0.0):
                state.sensors[sensor] = s
        if state.run < self.min_run and score < self.instant_threshold:
            return None
        state.phase, state.run = FIRING, 0
        state.severity = "critical" if state.peak >= self.critical_threshold else "warning"
        return Transition("firing", state.severity, state.started_at, state.peak, state.sensors)

    def _step_firing(self, state: PolicyState, score: float) -> Transition | None:
        if score >= self.clear_threshold:
            state.run = 0
            state.peak = max(state.peak, score)
            return None
        state.run += 1
        if state.run < self.clear_run:
            return None
        resolved = Transition(
            "resolved", state.severity, state.started_at, state.peak, state.sensors
        )
        state.phase, state.run, state.sensors = COOLDOWN, self.cooldown, {}
        if state.run <= 0:
            state.phase = NORMAL
        return resolved
