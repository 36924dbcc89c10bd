"""The `[section]` models of the operations features: sensor health, silent machines, operator
feedback, maintenance windows and operating modes.

Same rules as `anomstream.stream.config_sections`: frozen, strict, unknown keys rejected, each
field's docstring is its documentation.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt

from anomstream.stream.config_sections import (
    NonEmptyStr,
    NonNegativeFloat,
    PositiveFloat,
    _Section,
)

__all__ = ["FeedbackConfig", "HealthConfig", "ModesConfig", "SilenceConfig"]


class HealthConfig(_Section):
    """Sensor-health codes: stuck, flatline, railed, gap and out-of-range sensors, raised as
    alerts with their own `kind`, apart from anomalies of the machine."""

    enabled: StrictBool = True
    """Track the health of every sensor and alert on broken ones."""


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
    severity: Literal["warning", "critical"] = "warning"
    """Severity of `silent` alerts (see docs/operations/silence.md)."""


class FeedbackConfig(_Section):
    """The operator feedback topic: `false_positive`, `confirmed` and `maintenance_done` on an
    alert id (schema: `config/schemas/feedback-v1.json`)."""

    enabled: StrictBool = True
    """Consume the feedback topic."""
    topic: NonEmptyStr = "anomstream.feedback"
    """Topic of feedback messages, keyed by machine id, partitioned like the input."""


class ModesConfig(_Section):
    """Maintenance windows and operating modes, from the control topic or from config."""

    enabled: StrictBool = True
    """Consume the control topic and apply configured windows."""
    control_topic: NonEmptyStr = "anomstream.control"
    """Topic of mode and maintenance messages, keyed by machine id, partitioned like the input
    (schema: `config/schemas/control-v1.json`)."""
