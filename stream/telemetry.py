"""Decode and validate telemetry records: bytes in, a `Reading` or an `InvalidRecord` out.

The expected value is a JSON object (field names from `[telemetry]` config):
`{"machine_id": "press-07", "ts": "2026-11-24T09:00:00.120Z", "sensors": {"temp_c": 71.2}}`.
The machine falls back to the record key. `ts` is ISO-8601 (a zone-less time is taken as UTC)
or epoch seconds/milliseconds (`timestamp_unit = "auto"` tells them apart by magnitude).

Every way a record can be unusable maps to one short reason code: it becomes the
`anomstream-dlq-reason` header of the dead letter and the `reason` label of the rejected counter.

Reason codes (`REASONS`), stable and low-cardinality:

- `empty`: the record has no value.
- `oversize`: the value is longer than `telemetry.max_record_bytes`.
- `bad_utf8`: the value is not UTF-8.
- `bad_json`: the value is not JSON (also: nested too deep, an integer of more than 4300 digits).
- `bad_shape`: not a JSON object, more than `MAX_SENSORS` sensors, or a sensor name that is
  empty, too long, not printable (control, format or separator characters, lone surrogates)
  or only spaces.
- `no_machine`: no machine id in the value (or not a string, or empty) and no record key.
- `bad_machine_id`: a machine id (from the value or the key fallback) that cannot be a Kafka key
  or a metric label: longer than `MAX_ID_LENGTH`, not printable, or only spaces.
- `no_timestamp`: no timestamp field.
- `bad_timestamp`: a timestamp that is not a time, or outside `MIN_EVENT_TIME`..`MAX_EVENT_TIME`.
- `no_sensors`: the sensors field is missing, empty or not an object.
- `bad_value`: a sensor value that is not a number (string, null, bool, list, object).
- `non_finite`: a sensor value that is NaN or infinite (also `1e999`, which parses as infinity).
- `out_of_range`: a finite sensor value beyond ±`MAX_ABS_VALUE`, or an integer beyond float range.
- `too_many_sensors`: not a decoder reason: the reading would give its machine more than
  `detector.max_sensors_per_machine` sensors (its documentation says why).
- `internal_error`: not a decoder reason: processing a valid reading failed (a bug); the detail
  header names the exception type (see `Pipeline`).
- `bad_feedback`, `bad_control`: not decoder reasons: a message of the feedback or control topic
  that does not follow its schema (`config/schemas/feedback-v1.json`, `control-v1.json`).
- `unknown_machine`, `unknown_alert`: feedback or control on a machine this instance does not
  hold, or feedback on an alert id its machine does not remember (kept, so it can be replayed).

Names must be *printable* (`str.isprintable`): that one C call excludes the categories Cc
(controls, NUL), Cf (format: RTL/LTR marks, zero-width joiners, BOM), Cs (lone surrogates,
which `"\\ud800"` in JSON produces and UTF-8 cannot encode), Co, Cn, Zl, Zp and every space but
U+0020. A printable name therefore always encodes as UTF-8, as a Kafka key, a JSON string and a
Prometheus label value.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import orjson

from anomstream.stream.config import TelemetryConfig
from anomstream.stream.errors import InvalidRecord

__all__ = [
    "MAX_ABS_VALUE",
    "MAX_EVENT_TIME",
    "MAX_ID_LENGTH",
    "MAX_SENSORS",
    "MIN_EVENT_TIME",
    "MS_CUTOFF",
    "REASONS",
    "Reading",
    "TelemetryDecoder",
    "valid_name",
]

REASONS = (
    "empty",
    "oversize",
    "bad_utf8",
    "bad_json",
    "bad_shape",
    "no_machine",
    "bad_machine_id",
    "no_timestamp",
    "bad_timestamp",
    "no_sensors",
    "bad_value",
    "non_finite",
    "out_of_range",
    "too_many_sensors",
    "internal_error",
    "bad_feedback",
    "bad_control",
    "unknown_machine",
    "unknown_alert",
)
MAX_SENSORS = 1024  # bounds the per-record work and the entities one record can create
MAX_ID_LENGTH = 256  # characters of a machine id or sensor name
# Detectors square and sum readings: past ~1e154 a square overflows to inf and an EWM mean or
# variance stays inf/NaN for good (ewm-zscore, sad scored 0 or 0.5 forever after one 1e308).
# 1e38 is where shape-novelty already clamps (float32 range); squares and sums stay finite.
MAX_ABS_VALUE = 1e38
# Alerts render event times as ISO strings; beyond these a reading is a producer's bug.
MIN_EVENT_TIME = 0.0  # exclusive: 1970-01-01T00:00:00Z
MAX_EVENT_TIME = 7258118400.0  # inclusive: 2200-01-01T00:00:00Z
# Epoch values above this are milliseconds: 1e11 s is the year 5138, 1e11 ms is March 1973.
MS_CUTOFF = 1e11


def valid_name(name: str) -> bool:
    """True if `name` can be a machine id or sensor name (see the module docstring)."""
    return 0 < len(name) <= MAX_ID_LENGTH and name.isprintable() and not name.isspace()


class Reading:
    """One validated telemetry record."""

    __slots__ = ("event_time", "machine", "sensors")

    def __init__(self, machine: str, event_time: float, sensors: dict[str, float]) -> None:
        self.machine = machine
        self.event_time = event_time  # epoch seconds
        self.sensors = sensors

    def __repr__(self) -> str:
        return f"Reading({self.machine!r}, {self.event_time!r}, {self.sensors!r})"


class TelemetryDecoder:
    """Turns raw record key/value bytes into `Reading`s according to a `TelemetryConfig`."""

    def __init__(self, config: TelemetryConfig) -> None:
        self.config = config
        self._machine_field = config.machine_field
        self._ts_field = config.timestamp_field
        self._sensors_field = config.sensors_field
        self._unit = config.timestamp_unit
        self._max_bytes = config.max_record_bytes

    def decode(self, key: bytes | None, value: bytes | None) -> Reading:
        """Return the reading in `value`, or raise `InvalidRecord` with a reason code."""
        if not value:
            raise InvalidRecord("empty", "record has no value")
        if len(value) > self._max_bytes:
            raise InvalidRecord("oversize", f"{len(value)} bytes > max_record_bytes")
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            doc = _lenient_json(value, exc)
        if not isinstance(doc, dict):
            raise InvalidRecord("bad_shape", f"expected a JSON object, got {type(doc).__name__}")
        return Reading(
            self._machine(doc, key), self.timestamp(doc.get(self._ts_field)), self._sensors(doc)
        )

    def _machine(self, doc: dict[str, Any], key: bytes | None) -> str:
        machine = doc.get(self._machine_field)
        where = f"'{self._machine_field}'"
        if machine is None and key:
            where = "record key"
            try:
                machine = key.decode("utf-8")  # strict: encoded surrogates are refused too
            except UnicodeDecodeError:
                raise InvalidRecord("bad_machine_id", "record key is not UTF-8") from None
        if not isinstance(machine, str) or not machine:
            raise InvalidRecord("no_machine", f"{where} missing, empty or not a string")
        if not valid_name(machine):
            raise InvalidRecord(
                "bad_machine_id",
                f"{where} too long (> {MAX_ID_LENGTH}), not printable or blank: {machine[:64]!r}",
            )
        return machine

    def timestamp(self, raw: Any) -> float:
        """Epoch seconds of a timestamp field's value, as this config reads it (also replay's
        parser, so replay and the service agree on every timestamp); `InvalidRecord` if none."""
        if raw is None:
            raise InvalidRecord("no_timestamp", f"'{self._ts_field}' missing")
        unit = self._unit
        original = raw
        if isinstance(raw, str) and unit in ("auto", "iso"):
            try:
                parsed = datetime.fromisoformat(raw)
            except ValueError:
                if unit == "iso":
                    raise InvalidRecord("bad_timestamp", f"not ISO-8601: {raw[:40]!r}") from None
                raw = _number_or_none(raw)
            else:
                if parsed.tzinfo is None:
                    parsed = parsed.replace(tzinfo=UTC)
                return _in_range(parsed.timestamp(), original)
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or unit == "iso":
            raise InvalidRecord("bad_timestamp", f"unusable timestamp {_brief(original)}")
        try:
            seconds = float(raw)
        except OverflowError:  # an integer beyond float range
            raise InvalidRecord("bad_timestamp", "timestamp out of range: a huge integer") from None
        if unit == "ms" or (unit == "auto" and abs(seconds) >= MS_CUTOFF):
            seconds /= 1000.0
        return _in_range(seconds, original)

    def _sensors(self, doc: dict[str, Any]) -> dict[str, float]:
        sensors = doc.get(self._sensors_field)
        if not isinstance(sensors, dict) or not sensors:
            raise InvalidRecord("no_sensors", f"'{self._sensors_field}' missing, empty or not an object")
        if len(sensors) > MAX_SENSORS:
            raise InvalidRecord("bad_shape", f"{len(sensors)} sensors > {MAX_SENSORS}")
        out: dict[str, float] = {}
        for name, value in sensors.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidRecord("bad_value", f"sensor {name[:64]!r} is not a number")
            try:
                number = float(value)
            except OverflowError:  # a JSON integer like 10**400: legal JSON, no float holds it
                raise InvalidRecord(
                    "out_of_range", f"sensor {name[:64]!r} is an integer beyond float range"
                ) from None
            # One chained comparison on the hot path; NaN fails it too.
            if not -MAX_ABS_VALUE <= number <= MAX_ABS_VALUE:
                if not math.isfinite(number):
                    raise InvalidRecord("non_finite", f"sensor {name[:64]!r} is {number}")
                raise InvalidRecord(
                    "out_of_range", f"sensor {name[:64]!r} is {number:g}, beyond ±{MAX_ABS_VALUE:g}"
                )
            if not valid_name(name):
                raise InvalidRecord(
                    "bad_shape",
                    f"sensor name too long (> {MAX_ID_LENGTH}), not printable or blank: "
                    f"{name[:64]!r}",
                )
            out[name] = number
        return out


def _in_range(seconds: float, original: Any) -> float:
    # Written so that NaN fails it too.
    if not MIN_EVENT_TIME < seconds <= MAX_EVENT_TIME:
        raise InvalidRecord(
            "bad_timestamp", f"timestamp out of range (1970..2200): {_brief(original)}"
        )
    return seconds


def _brief(obj: Any) -> str:
    """A short, always-renderable description of a JSON value for an error detail."""
    if isinstance(obj, str):
        return repr(obj[:40])
    if isinstance(obj, float) or (isinstance(obj, int) and obj.bit_length() < 64):
        return repr(obj)
    # Not repr(): a huge integer or a deeply nested list would be slow or hit the recursion limit.
    return f"<{type(obj).__name__}>"


def _lenient_json(value: bytes, error: Exception) -> Any:
    """Second look at what orjson refused, off the hot path, to give the precise reason.

    Python's `json.dumps` writes NaN and Infinity literals, and 1e999 overflows to infinity:
    such records are valid-looking JSON with non-finite values, which deserves `non_finite`
    (raised later, by the sensor check), not `bad_json`. The same goes for integers beyond
    64 bits (`out_of_range`) and lone surrogates (`bad_machine_id`, `bad_shape`).
    """
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRecord("bad_utf8", "value is not valid UTF-8") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # ValueError includes an int of > 4300 digits
        raise InvalidRecord("bad_json", str(error)) from None


def _number_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
