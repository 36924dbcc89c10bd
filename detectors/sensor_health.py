"""Sensor-health codes: stuck, flatline, railed, gap and out-of-range sensors, as alerts.

Contract with the pipeline (`anomstream.stream.pipeline`):
- `step(state, sensors, event_time, machine=...)` runs once per reading, before the models; it
  returns the health transitions (firing/resolved, `Transition.kind` = the code) and the sensors
  whose values must not reach the models while their code is open;
- `resolve_all(state)` ends every open health alert of the machine (maintenance starts);
- `forget(state, sensors)` drops what was learned about sensors (a part replaced), resolving
  their open codes;
- `describe(state)` is the JSON-able health of the machine's sensors for `GET /machines/{id}`.
State lives in `state.ops["health"]`, plain versioned data (`{"v": 1, "sensors": {name: ...}}`,
one sensor's keys in `anomstream.detectors.health_codes`).

The codes say "the sensor is broken", not "the machine misbehaves", so they do not go through
the alert policy and know none of its thresholds: each is a rule on runs of readings, with its
own severity. While `stuck`, `flatline` or `railed` is open on a sensor its values are
artefacts of the instrument: they are returned as excluded, so they neither teach the sensor's
model nor the relations between sensors, nor keep an anomaly alert open. `out_of_range` values
are real process values and stay in; a missing sensor (`gap`) has no value to exclude.

Every transition has `sensors = sensor_scores = {sensor: 1.0}`, score 1.0, and `started_at` the
event time of the first reading of the condition, so a replay gives the same alert id.
User documentation: docs/operations/health.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from typing import Any

from anomstream.detectors.entities import MachineState
from anomstream.detectors.health_codes import (
    DEFAULT_SEVERITY,
    HEALTH_KINDS,
    NO_LIMITS,
    REPEAT_KINDS,
    LimitRule,
    Limits,
    Rules,
    describe_range,
    describe_repeat,
    new_sensor,
    out_of_range,
    repeat_code,
    update_run,
)
from anomstream.detectors.policy import Transition

__all__ = ["DEFAULT_SEVERITY", "HEALTH_KINDS", "LimitRule", "SensorHealth"]

VERSION = 1
DEFAULT_RULES = Rules()
_CACHE_MAX = 65_536  # (machine, sensor) -> limits matched: bounded, rebuilt on demand
log = logging.getLogger(__name__)


class SensorHealth:
    """Tracks every sensor of every machine; see the module docstring.

    Examples
    --------
    >>> health = SensorHealth(rules=Rules(flatline_run=3))
    >>> state = MachineState()
    >>> [health.step(state, {"a": 1.0, "b": 5.0}, t)[0] for t in (0.0, 1.0)]
    [[], []]
    >>> fired, excluded = health.step(state, {"a": 1.0, "b": 5.0}, 2.0)
    >>> [(t.kind, t.status, list(t.sensors), t.started_at) for t in fired], sorted(excluded)
    ([('flatline', 'firing', ['a'], 0.0), ('flatline', 'firing', ['b'], 0.0)], ['a', 'b'])
    >>> [(t.kind, t.status, list(t.sensors)) for t in health.step(state, {"a": 2.0, "b": 5.0}, 3.0)[0]]
    [('flatline', 'resolved', ['a'])]
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        rules: Rules = DEFAULT_RULES,
        limits: Sequence[LimitRule] = (),
        severity: Mapping[str, str] | None = None,
    ) -> None:
        self.enabled = enabled
        self.rules = rules
        self.limits = tuple(limits)
        self.severity = {**DEFAULT_SEVERITY, **(severity or {})}
        unknown = set(self.severity) - set(HEALTH_KINDS)
        if unknown:
            raise ValueError(f"unknown health kinds {sorted(unknown)}; known: {HEALTH_KINDS}")
        bad = {k: v for k, v in self.severity.items() if v not in ("warning", "critical")}
        if bad:
            raise ValueError(f"severity must be 'warning' or 'critical', got {bad}")
        self._cache: dict[tuple[str, str], Limits] = {}

    @classmethod
    def from_config(cls, config: Any) -> SensorHealth:
        """From a `HealthConfig`."""
        rules = Rules(**{f.name: getattr(config, f.name) for f in fields(Rules)})
        limits = [
            LimitRule(e.machine, e.sensor, Limits(e.min, e.max, e.rail_min, e.rail_max))
            for e in config.limits
        ]
        severity = {kind: getattr(config.severity, kind) for kind in HEALTH_KINDS}
        return cls(enabled=config.enabled, rules=rules, limits=limits, severity=severity)

    def limits_for(self, machine: str, sensor: str) -> Limits:
        """The first matching `[[health.limits]]` entry's limits, else none."""
        key = (machine, sensor)
        found = self._cache.get(key)
        if found is None:
            found = next((r.limits for r in self.limits if r.matches(machine, sensor)), NO_LIMITS)
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[key] = found
        return found

    def step(
        self, state: MachineState, sensors: Mapping[str, float], event_time: float, machine: str = ""
    ) -> tuple[list[Transition], frozenset[str]]:
        """Count one reading of the machine; see the module docstring."""
        if not self.enabled:
            return [], frozenset()
        known = _sensors(state)
        rules = self.rules
        out: list[Transition] = []
        excluded: list[str] = []
        for name, value in sensors.items():
            s = known.get(name)
            if s is None:
                s = known[name] = new_sensor(value, event_time)
            opened = s["open"]
            if s["miss"]:
                if "gap" in opened:
                    out.append(self._close(s, "gap", name, f"back after {s['miss']} readings"))
                s["miss"] = 0
            update_run(s, value, event_time)
            limits = self.limits_for(machine, name) if self.limits else NO_LIMITS
            due = repeat_code(s, rules, limits)
            if opened:
                for kind in REPEAT_KINDS:
                    entry = opened.get(kind)
                    # The run that raised it ended (the value changed), or another code is due.
                    if entry is not None and (kind != due or entry[0] != s["since"]):
                        out.append(self._close(s, kind, name, f"{kind} ended: now {value!r}"))
            if due is not None:
                if due not in opened:
                    out.append(self._open(s, due, name, s["since"], describe_repeat(due, s, limits)))
                excluded.append(name)
            if limits.low is not None or limits.high is not None or "out_of_range" in opened:
                self._range(s, name, value, event_time, limits, out)  # (limits gone: resolves)
        if len(known) > len(sensors):  # a sensor the machine used to send is missing
            for name, s in known.items():
                if name not in sensors:
                    self._missing(s, name, event_time, out)
        return out, frozenset(excluded)

    def _range(
        self, s: dict[str, Any], name: str, value: float, event_time: float, limits: Limits,
        out: list[Transition],
    ) -> None:
        # `out` counts readings outside the limits while no alert is open, inside them while
        # one is: the same run length fires and resolves it (a value hovering at a limit keeps
        # one alert, not a storm).
        outside = out_of_range(value, limits)
        is_open = "out_of_range" in s["open"]
        if outside == is_open:
            s["out"] = 0
            return
        s["out"] += 1
        if s["out"] == 1:
            s["out_since"] = event_time
        if s["out"] < self.rules.out_of_range_run:
            return
        s["out"] = 0
        if is_open:
            out.append(self._close(s, "out_of_range", name, f"back within the limits: {value!r}"))
        else:
            out.append(self._open(s, "out_of_range", name, s["out_since"], describe_range(value, limits)))

    def _missing(self, s: dict[str, Any], name: str, event_time: float, out: list[Transition]) -> None:
        if s["n"] < self.rules.gap_run:
            return  # seen too rarely to say the machine "used to carry" it
        s["miss"] += 1
        if s["miss"] == 1:
            s["miss_since"] = event_time
        if s["miss"] >= self.rules.gap_run and "gap" not in s["open"]:
            detail = f"missing from the machine's last {s['miss']} readings"
            out.append(self._open(s, "gap", name, s["miss_since"], detail))

    def _open(self, s: dict[str, Any], kind: str, name: str, started_at: float, detail: str) -> Transition:
        severity = self.severity[kind]
        s["open"][kind] = [started_at, severity, detail]
        return _transition("firing", kind, name, started_at, severity, detail)

    @staticmethod
    def _close(s: dict[str, Any], kind: str, name: str, detail: str) -> Transition:
        # The firing's own start and severity: the same alert id, the same gauge series.
        started_at, severity, _ = s["open"].pop(kind)
        return _transition("resolved", kind, name, started_at, severity, detail)

    def resolve_all(self, state: MachineState) -> list[Transition]:
        """End every open health alert of the machine, and restart the runs that raised them:
        a sensor still broken afterwards raises a new alert once its condition holds again."""
        out: list[Transition] = []
        for name, s in _sensors(state).items():
            for kind in [k for k in HEALTH_KINDS if k in s["open"]]:
                out.append(self._close(s, kind, name, "resolved: maintenance"))
            s["run"] = s["miss"] = s["out"] = 0
        return out

    def forget(self, state: MachineState, sensors: Iterable[str] | None = None) -> list[Transition]:
        """Drop what was learned about `sensors` (None: all) of the machine, resolving their open
        codes: after a part replacement (`maintenance_done`) the new sensor's habits and rails
        are learned afresh, and a sensor removed for good stops raising `gap`."""
        known = _sensors(state)
        names = list(known) if sensors is None else [n for n in sensors if n in known]
        out: list[Transition] = []
        for name in names:
            s = known.pop(name)
            out += [self._close(s, k, name, "resolved: sensor reset") for k in HEALTH_KINDS if k in s["open"]]
        return out

    def describe(self, state: MachineState) -> dict[str, Any]:
        """Per sensor: open codes, the current run and value, learned extremes and longest run."""
        return {
            name: {
                "open": {kind: {"started_at": e[0], "severity": e[1], "detail": e[2]}
                         for kind, e in s["open"].items()},
                "readings": s["n"],
                "value": s["last"],
                "run": s["run"],
                "longest_run": s["longest"],
                "min": s["lo"],
                "max": s["hi"],
                "missing": s["miss"],
            }
            for name, s in _sensors(state).items()
        }


def _sensors(state: MachineState) -> dict[str, dict[str, Any]]:
    """The machine's per-sensor health state, created on first use (also for state
    checkpointed before health existed)."""
    book = state.ops.get("health")
    if book is None or book.get("v") != VERSION:
        if book is not None:  # written by a later release: start afresh rather than misread it
            log.warning("sensor-health state version %r not understood; relearning", book.get("v"))
        book = state.ops["health"] = {"v": VERSION, "sensors": {}}
    return book["sensors"]


def _transition(status: str, kind: str, name: str, started_at: float, severity: str, detail: str) -> Transition:
    one = {name: 1.0}
    return Transition(status, severity, started_at, 1.0, one, one, kind=kind, detail=detail)
