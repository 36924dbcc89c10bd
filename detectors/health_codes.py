"""The per-sensor rules of the sensor-health codes: plain functions on one sensor's plain state.

One sensor's state is a dict of numbers (checkpointed inside `MachineState.ops["health"]`):

- `n`: values seen; `varied`: some value ever differed from the first one;
- `last`, `run`, `since`: the current run of identical consecutive values, its length and the
  event time of its first reading (`run` 0: no run, the next value starts one);
- `longest`: the longest run of identical values that ended without a code, or with one that
  recurred at the same value (`_coded_run_ended`): how the sensor normally repeats itself (a
  1-decimal speed repeats often, a 4-decimal vibration never);
- `coded`: `[value, run]` of the last run that raised a repeat code (absent until one did);
- `lo`, `hi`: the lowest and highest values seen (the learned rails);
- `miss`, `miss_since`: consecutive machine readings without the sensor, since when;
- `out`, `out_since`: consecutive readings outside the limits (no `out_of_range` open), or inside
  them again (one open), since when;
- `open`: `{kind: [started_at, severity, detail]}`, the codes firing on the sensor.

Exact equality is the right test of "the same value": a stuck transmitter or a gateway holding
its last sample repeats the very same number, while any live signal read with enough decimals
changes. A sensor that legitimately repeats (coarse quantisation) has learned long runs, and the
stuck bound grows with them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

__all__ = [
    "DEFAULT_SEVERITY", "HEALTH_KINDS", "NO_LIMITS", "REPEAT_KINDS", "LimitRule", "Limits", "Rules", "Severity", "describe_range", "describe_repeat",
    "new_sensor", "out_of_range", "repeat_code", "update_run",
]

HEALTH_KINDS = ("stuck", "flatline", "railed", "gap", "out_of_range")
# A reading outside the engineering limits is the process itself in danger; the other codes
# say a reading cannot be trusted, which needs a technician, not an emergency stop.
Severity = Literal["warning", "critical"]
DEFAULT_SEVERITY: dict[str, Severity] = {
    "stuck": "warning", "flatline": "warning", "railed": "warning", "gap": "warning",
    "out_of_range": "critical",
}
# The codes of a sensor repeating one value: at most one is open on a sensor, in this order of
# precedence (a flatline sensor is trivially at its own min and max; a railed one repeats too).
REPEAT_KINDS = ("flatline", "railed", "stuck")


@dataclass(frozen=True)
class Rules:
    """Run lengths, in readings (see `HealthConfig` for what each means and its default)."""

    min_history: int = 200
    stuck_min_run: int = 150
    stuck_factor: float = 3.0
    flatline_run: int = 100
    railed_run: int = 30
    gap_run: int = 30
    out_of_range_run: int = 2

    def __post_init__(self) -> None:
        for name in ("min_history", "stuck_min_run", "flatline_run", "railed_run", "gap_run",
                     "out_of_range_run"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive number of readings, got {value!r}")
        if not self.stuck_factor > 0:
            raise ValueError(f"stuck_factor must be > 0, got {self.stuck_factor!r}")

    def bound(self, minimum: int, longest: int) -> int:
        """Run length of identical values beyond the sensor's habits: at least `minimum`, and
        `stuck_factor` times its longest normal run."""
        return max(minimum, math.ceil(self.stuck_factor * longest))


@dataclass(frozen=True)
class Limits:
    """Configured limits of one sensor: engineering limits (`low`/`high`: outside is
    `out_of_range`) and the instrument's rails (`rail_low`/`rail_high`: pinned there is
    `railed`). None: no such limit."""

    low: float | None = None
    high: float | None = None
    rail_low: float | None = None
    rail_high: float | None = None

    def __post_init__(self) -> None:
        for a, b in (("low", "high"), ("rail_low", "rail_high")):
            lo, hi = getattr(self, a), getattr(self, b)
            if lo is not None and hi is not None and not lo < hi:
                raise ValueError(f"{a} ({lo}) must be below {b} ({hi})")


NO_LIMITS = Limits()


@dataclass(frozen=True)
class LimitRule:
    """`limits` for the sensors matching shell-style `machine` / `sensor` patterns."""

    machine: str
    sensor: str
    limits: Limits

    def matches(self, machine: str, sensor: str) -> bool:
        return fnmatchcase(machine, self.machine) and fnmatchcase(sensor, self.sensor)


def new_sensor(value: float, event_time: float) -> dict[str, Any]:
    """The state of a sensor first seen with `value` (its first run not started yet)."""
    return {
        "n": 0, "varied": False, "last": value, "run": 0, "since": event_time, "longest": 0,
        "lo": value, "hi": value, "miss": 0, "miss_since": event_time, "out": 0,
        "out_since": event_time, "open": {},
    }


def update_run(s: dict[str, Any], value: float, event_time: float) -> None:
    """Count `value` into the sensor's runs, extremes and history."""
    if s["run"] and value == s["last"]:
        s["run"] += 1
    else:
        if s["n"] and value != s["last"]:
            s["varied"] = True
        if any(k in s["open"] for k in REPEAT_KINDS):
            _coded_run_ended(s)
        elif s["run"] > s["longest"]:
            # A run that raised no code teaches how the sensor normally repeats.
            s["longest"] = s["run"]
        s["last"], s["run"], s["since"] = value, 1, event_time
    s["n"] += 1
    if value < s["lo"]:
        s["lo"] = value
    elif value > s["hi"]:
        s["hi"] = value


def _coded_run_ended(s: dict[str, Any]) -> None:
    """A run that raised a repeat code ended. It teaches the sensor's habit only when it recurs.

    A stuck episode must not raise the bound of the next one, so one coded run teaches nothing.
    But a machine that idles at a floor (0 A, 0 rpm, a valve's closed position) holds the very
    same value for a similar time every cycle. Its lowest value is a learned rail, and
    `railed` fired on every idle period, forever: 13 warnings on NAB's noiseless daily series
    (`art_daily_no_noise`), one a day. The second coded run at the same value is that habit:
    the shorter of the two runs joins `longest`, and the bound grows to `stuck_factor` times
    it. A transmitter that freezes at an arbitrary value rarely repeats it exactly. Configured
    rails (`rail_low`/`rail_high`) ignore `longest`, so they still fire every time.
    """
    value, run = s["last"], s["run"]
    last = s.get("coded")  # [value, run] of the previous coded run; absent in older state
    if last is not None and last[0] == value:
        s["longest"] = max(s["longest"], min(run, last[1]))
    s["coded"] = [value, run]


def repeat_code(s: dict[str, Any], rules: Rules, limits: Limits) -> str | None:
    """The repeat code the sensor's current run amounts to, if any (after `update_run`).

    Everything it depends on is fixed for the length of a run (the extremes do not move while
    the value does not), so a code, once due, stays due until the value changes.
    """
    run = s["run"]
    if not s["varied"]:
        return "flatline" if run >= rules.flatline_run else None
    value = s["last"]
    history = s["n"] - run >= rules.min_history  # readings before this run
    if (limits.rail_low is not None and value <= limits.rail_low) or (
        limits.rail_high is not None and value >= limits.rail_high
    ):  # the instrument's own end: never stuck, railed says more
        return "railed" if run >= rules.railed_run else None
    if history and (value <= s["lo"] or value >= s["hi"]):
        # At the lowest or highest value seen: railed, unless the sensor normally holds a value
        # that long (a coarse sensor reaching a new maximum and staying one step there).
        return "railed" if run >= rules.bound(rules.railed_run, s["longest"]) else None
    if history and run >= rules.bound(rules.stuck_min_run, s["longest"]):
        return "stuck"
    return None


def out_of_range(value: float, limits: Limits) -> bool:
    return (limits.low is not None and value < limits.low) or (
        limits.high is not None and value > limits.high
    )


def describe_repeat(kind: str, s: dict[str, Any], limits: Limits) -> str:
    """The human line of a repeat code, e.g. `stuck at 42.0 for 150 readings`."""
    value, run = s["last"], s["run"]
    if kind == "flatline":
        return f"flatline: only ever reported {value!r}, {run} readings"
    if kind == "railed":
        low = (limits.rail_low is not None and value <= limits.rail_low) or value <= s["lo"]
        where = "minimum" if low else "maximum"
        return f"railed at its {where} {value!r} for {run} readings"
    return f"stuck at {value!r} for {run} readings (longest normal run {s['longest']})"


def describe_range(value: float, limits: Limits) -> str:
    if limits.low is not None and value < limits.low:
        return f"{value!r} below the limit min = {limits.low!r}"
    return f"{value!r} above the limit max = {limits.high!r}"
