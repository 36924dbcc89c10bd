"""The `[section]` models of the operations features: sensor health, silent machines, operator
feedback, maintenance windows and operating modes.

Same rules as `anomstream.stream.config_sections`: frozen, strict, unknown keys rejected, each
field's docstring is its documentation.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from anomstream.detectors.health_codes import DEFAULT_SEVERITY, Rules, Severity
from anomstream.stream.config_sections import (
    NonEmptyStr,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    _Section,
    report_problems,
)
from pydantic import (
    BeforeValidator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    WithJsonSchema,
    model_validator,
)

__all__ = [
    "FeedbackConfig", "HealthConfig", "HealthLimit", "HealthSeverity", "ModeRuleConfig",
    "ModeWindow", "ModesConfig", "SilenceConfig",
]


OptionalFloat = StrictFloat | None


class HealthLimit(_Section):
    """Configured limits of the sensors matching `machine` / `sensor`, `[[health.limits]]`;
    the first matching entry wins. Every limit is optional."""

    machine: StrictStr = "*"
    """Shell-style pattern of machine ids."""
    sensor: StrictStr = "*"
    """Shell-style pattern of sensor names."""
    min: OptionalFloat = None
    """Engineering lower limit: a value below it is `out_of_range`."""
    max: OptionalFloat = None
    """Engineering upper limit: a value above it is `out_of_range`."""
    rail_min: OptionalFloat = None
    """The instrument's lowest reading (the end of its span, e.g. what 4 mA maps to): a value
    at or below it for `railed_run` readings is `railed`."""
    rail_max: OptionalFloat = None
    """The instrument's highest reading: a value at or above it for `railed_run` readings is
    `railed`."""

    @model_validator(mode="after")
    def _check_limits(self) -> HealthLimit:
        problems = [
            (b, f"must be above {a} ({getattr(self, a)!r}), got {getattr(self, b)!r}")
            for a, b in (("min", "max"), ("rail_min", "rail_max"))
            if getattr(self, a) is not None and getattr(self, b) is not None
            and not getattr(self, a) < getattr(self, b)
        ]
        if all(getattr(self, k) is None for k in ("min", "max", "rail_min", "rail_max")):
            problems.append(("max", "an entry needs at least one of min, max, rail_min, rail_max"))
        report_problems(problems)
        return self


class HealthSeverity(_Section):
    """Severity of each health code's alerts."""

    stuck: Severity = DEFAULT_SEVERITY["stuck"]
    """Severity of `stuck` alerts."""
    flatline: Severity = DEFAULT_SEVERITY["flatline"]
    """Severity of `flatline` alerts."""
    railed: Severity = DEFAULT_SEVERITY["railed"]
    """Severity of `railed` alerts."""
    gap: Severity = DEFAULT_SEVERITY["gap"]
    """Severity of `gap` alerts."""
    out_of_range: Severity = DEFAULT_SEVERITY["out_of_range"]
    """Severity of `out_of_range` alerts: the process itself is outside its limits."""


class HealthConfig(_Section):
    """Sensor-health codes: stuck, flatline, railed, gap and out-of-range sensors, raised as
    alerts with their own `kind`, apart from anomalies of the machine
    (docs/operations/health.md). Run lengths count the sensor's (for `gap`: the machine's)
    readings, not time."""

    enabled: StrictBool = True
    """Track the health of every sensor and alert on broken ones."""
    min_history: PositiveInt = Rules.min_history
    """Readings of a sensor before `stuck` and the learned rails of `railed` apply."""
    stuck_min_run: PositiveInt = Rules.stuck_min_run
    """`stuck`: the fewest identical consecutive values that make a sensor stuck. Above the
    simulator's injected stuck faults (40-120 readings), which the models already page for as
    anomalies: the code says the sensor broke once it lasts."""
    stuck_factor: PositiveFloat = Rules.stuck_factor
    """`stuck`: a sensor is stuck after `max(stuck_min_run, stuck_factor x its longest normal run
    of identical values)` of them, so a coarsely quantised sensor that often repeats is not."""
    flatline_run: PositiveInt = Rules.flatline_run
    """`flatline`: readings of one single value, over the sensor's whole life, that make it a
    dead or unconnected channel."""
    railed_run: PositiveInt = Rules.railed_run
    """`railed`: identical readings at the lowest or highest value seen (after `min_history`),
    or at `rail_min` / `rail_max`, that make a sensor railed."""
    gap_run: PositiveInt = Rules.gap_run
    """`gap`: consecutive readings of the machine without a sensor it carried (at least that
    many times before) that raise a gap."""
    out_of_range_run: PositiveInt = Rules.out_of_range_run
    """`out_of_range`: consecutive readings outside `min` / `max` that fire it, and inside
    again that resolve it (one glitching sample does not page)."""
    severity: HealthSeverity = HealthSeverity()
    """Severity per code, `[health.severity]`."""
    limits: tuple[HealthLimit, ...] = ()
    """Engineering limits and instrument rails per sensor pattern, `[[health.limits]]`, first
    match wins."""


class SilenceConfig(_Section):
    """Silent machines: a machine that stops reporting raises `kind: silent`."""

    # Single-line docstrings: each becomes one cell of docs/configuration.md's tables.
    enabled: StrictBool = True
    """Alert on machines that report nothing for longer than they usually do."""
    factor: Annotated[StrictFloat, Field(ge=1)] = 10.0
    """Silent after `factor` x its usual interval (median event-time gap) with no reading..."""
    min_silence_seconds: NonNegativeFloat = 60.0
    """...and at least this long: a 100 ms machine does not page for a network hiccup."""
    min_readings: Annotated[StrictInt, Field(ge=3)] = 10
    """Readings before a machine's usual interval is trusted; it is never silent before."""
    check_interval_seconds: PositiveFloat = 5.0
    """How often the timer looks for silent machines, with or without incoming records."""
    severity: Severity = "warning"
    """Severity of `silent` alerts (see docs/operations/silence.md)."""


class FeedbackConfig(_Section):
    """The operator feedback topic: `false_positive`, `confirmed` and `maintenance_done` on an
    alert id (schema: `config/schemas/feedback-v1.json`)."""

    enabled: StrictBool = True
    """Consume the feedback topic."""
    topic: NonEmptyStr = "anomstream.feedback"
    """Topic of feedback messages, keyed by machine id, partitioned like the input."""
    undo_window: NonNegativeInt = 1000
    """Readings of a machine after an anomaly episode ends during which `false_positive` still
    undoes what its models learned from the episode (the undo learns the readings since again:
    ~0.3 ms each for five sensors). Memory: a copy of each live machine's models (~24 KB for
    five sensors) plus its last readings. 0: no undo (`false_positive` only resolves the alert,
    result `no_snapshot`), nothing kept. See docs/operations/feedback.md."""


# Epoch values above this are milliseconds (the telemetry decoder's `auto` rule).
_MS_CUTOFF = 1e11
# The two modes every machine knows; any other name is an operating mode of `modes.learning`.
_BUILT_IN_MODES = ("production", "maintenance")
# Mode names end up in entity keys (`temp_c@setup`) and metric labels: short and plain.
_MODE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")


def _epoch_seconds(value: Any) -> Any:
    """A TOML datetime, an ISO-8601 string (zone-less: UTC) or epoch seconds/milliseconds, as
    epoch seconds; anything else is left for the float check to refuse."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not an ISO-8601 time nor epoch seconds: {value[:40]!r}") from None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value / 1000.0 if abs(value) >= _MS_CUTOFF else float(value)
    return value


EventTime = Annotated[
    StrictFloat,
    BeforeValidator(_epoch_seconds),
    WithJsonSchema({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}]}),
]


class ModeWindow(_Section):
    """A planned mode or maintenance window of the machines matching a pattern, in event time."""

    machine: StrictStr = "*"
    """Shell-style pattern of machine ids."""
    mode: NonEmptyStr = "maintenance"
    """`maintenance`, `production` or an operating mode (see `modes.learning`)."""
    start: EventTime | None = None
    """First event time in the mode (required): a TOML datetime, ISO-8601 (zone-less: UTC) or
    epoch seconds."""
    until: EventTime | None = None
    """First event time after it (exclusive); unset: until a later window or message."""

    @model_validator(mode="after")
    def _ordered(self) -> ModeWindow:
        if self.start is None:
            report_problems([("start", "required: the event time the window starts")])
        elif self.until is not None and self.until <= self.start:
            report_problems([("until", "must be later than start")])
        return self


class ModeRuleConfig(_Section):
    """A mode read off the telemetry: the machines matching `machine` are in `mode` while their
    `sensor` reads below `below` (or above `above`)."""

    machine: StrictStr = "*"
    """Shell-style pattern of machine ids."""
    sensor: NonEmptyStr = "speed_rpm"
    """The sensor that says the machine runs (a spindle speed, a motor current, a run bit)."""
    below: OptionalFloat = None
    """The mode holds while the sensor reads strictly below this."""
    above: OptionalFloat = None
    """The mode holds while the sensor reads strictly above this (set `below` or `above`)."""
    mode: NonEmptyStr = "idle"
    """`maintenance` or an operating mode (see `modes.learning`)."""

    @model_validator(mode="after")
    def _one_bound(self) -> ModeRuleConfig:
        if (self.below is None) == (self.above is None):
            report_problems([("below", "set exactly one of below and above")])
        return self


class ModesConfig(_Section):
    """Maintenance windows and operating modes, from the control topic or from config."""

    enabled: StrictBool = True
    """Consume the control topic and apply configured windows."""
    control_topic: NonEmptyStr = "anomstream.control"
    """Topic of mode and maintenance messages, keyed by machine id, partitioned like the input
    (schema: `config/schemas/control-v1.json`)."""
    learning: dict[StrictStr, Literal["pause", "separate", "shared"]] = {  # noqa: RUF012 - pydantic copies it
        "idle": "pause", "cleaning": "pause", "setup": "separate",
    }
    """The operating modes and how their models learn: `separate` (models of their own, entity
    keys suffixed `@mode`), `pause` (no learning, scoring nor alerts; open alerts stay open) or
    `shared` (the production models). Only these, `production` and `maintenance` are accepted:
    mode names are metric labels, a closed set."""
    after_maintenance: Literal["rebaseline", "resume"] = "rebaseline"
    """`rebaseline`: the machine's models restart (a new warm-up) on its first reading after
    maintenance, so a replaced part's new level does not page; `resume`: they go on as before."""
    windows: tuple[ModeWindow, ...] = ()
    """Planned windows, `[[modes.windows]]`; a control message or window starting later wins."""
    settle: NonNegativeInt = 0
    """Readings a machine settles for when it comes back from a mode without learning (a
    `pause` mode, or maintenance with `resume`): its models score and learn, but no anomaly
    alert starts. A restarted machine is not yet in its operating state (still cold, pressure
    building); set it to the readings your machines take to get there. 0: none."""

    rules: tuple[ModeRuleConfig, ...] = ()
    """Modes read off each reading, `[[modes.rules]]` (first match wins), where the schedule
    says `production`: a declared window wins. A reading without the rule's sensor keeps the
    mode its previous reading had by the rule. With `settle`, an undeclared daily stop is
    then handled like a declared one (docs/operations/modes.md)."""

    @model_validator(mode="after")
    def _known_modes(self) -> ModesConfig:
        problems = [
            (f"learning.{name}", f"{name!r} is built in, not an operating mode")
            for name in self.learning if name in _BUILT_IN_MODES
        ]
        problems += [
            (f"learning.{name}", "a mode name is 1-32 letters, digits, '_', '-' or '.'")
            for name in self.learning if not _MODE_NAME.fullmatch(name)
        ]
        problems += [
            (f"windows[{i}].mode", f"unknown mode {w.mode!r}: not maintenance, production nor in modes.learning")
            for i, w in enumerate(self.windows) if w.mode not in _BUILT_IN_MODES and w.mode not in self.learning
        ]
        problems += [
            (f"rules[{i}].mode", f"unknown mode {r.mode!r}: not maintenance nor in modes.learning")
            for i, r in enumerate(self.rules) if r.mode != "maintenance" and r.mode not in self.learning
        ]
        report_problems(problems)
        return self
