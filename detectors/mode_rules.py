"""Operating modes read off the telemetry itself: "press-* is idle while speed_rpm reads below 50".

Every machine stops: a shift ends, a break, a weekend. Declaring each stop (a control message,
a `[[modes.windows]]` entry) is more than any plant does, so undeclared stops paged: the
machine-wide model finds a stopped machine's state ~100 standard deviations from its running
relations (bench/daily_stops.py: an alert every stop). But a plant always knows which signal
says a machine runs (spindle speed, motor current, a run bit), and one rule per kind of machine
is configuration done once. With `modes.settle` for the restart, a rule-declared stop is exactly
a declared one: learning paused, no alert, and the restart settles.

A rule `(machine pattern, sensor, below | above, mode)` gives a reading its mode from the
reading's own value of `sensor`: strictly below `below`, or strictly above `above`. The first
matching rule in config order wins. Rules apply only where the schedule says `production`: a
declared window (a work order's maintenance, a setup) is more specific than a signal, and wins.
A reading without a finite value of the rule's sensor (a sensor offline, a dropped field) keeps
the machine in the mode its previous reading had by that rule: a missing speed is no evidence
that a stopped machine started.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

__all__ = ["ModeRule", "ModeRules"]

_CACHE = 100_000  # machines whose matching rules are remembered


@dataclass(frozen=True)
class ModeRule:
    machine: str  # shell-style pattern of machine ids
    sensor: str
    mode: str
    below: float | None = None  # the mode holds while the sensor reads strictly below this
    above: float | None = None  # ... or strictly above this (exactly one of the two is set)

    def __post_init__(self) -> None:
        if (self.below is None) == (self.above is None):
            raise ValueError(f"rule for {self.sensor!r}: set exactly one of below and above")

    def holds(self, value: float) -> bool:
        if self.below is not None:
            return value < self.below
        assert self.above is not None
        return value > self.above


class ModeRules:
    """The configured rules, matched once per machine.

    >>> rules = ModeRules([ModeRule("press-*", "speed_rpm", "idle", below=50.0)])
    >>> rules.mode("press-07", {"speed_rpm": 0.0}, "production")
    'idle'
    >>> rules.mode("press-07", {"speed_rpm": 1480.0}, "idle")
    >>> rules.mode("press-07", {"temp_c": 31.0}, "idle")  # speed missing: still idle
    'idle'
    >>> rules.mode("lathe-02", {"speed_rpm": 0.0}, "production")  # not a press
    """

    def __init__(self, rules: Sequence[ModeRule] = ()) -> None:
        self.rules = tuple(rules)
        self._matching: dict[str, tuple[ModeRule, ...]] = {}

    def __bool__(self) -> bool:
        return bool(self.rules)

    def for_machine(self, machine: str) -> tuple[ModeRule, ...]:
        if not self.rules:
            return ()
        matching = self._matching.get(machine)
        if matching is None:
            if len(self._matching) >= _CACHE:
                self._matching.clear()
            matching = self._matching[machine] = tuple(
                r for r in self.rules if fnmatchcase(machine, r.machine)
            )
        return matching

    def mode(self, machine: str, sensors: Mapping[str, float], previous: str) -> str | None:
        """The mode the machine's rules give this reading; None: no rule holds (production).
        `previous` is the mode of its previous reading."""
        for rule in self.for_machine(machine):
            value = sensors.get(rule.sensor)
            if value is None or not math.isfinite(value):
                if previous == rule.mode:
                    return rule.mode
                continue
            if rule.holds(value):
                return rule.mode
        return None
