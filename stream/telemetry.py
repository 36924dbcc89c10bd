"""Decode and validate telemetry records: bytes in, a `Reading` or an `InvalidRecord` out.

The expected value is a JSON object (field names from `[telemetry]` config):
`{"machine_id": "press-07", "ts": "2026-11-24T09:00:00.120Z", "sensors": {"temp_c": 71.2}}`.
The machine falls back to the record key. `ts` is ISO-8601 (a zone-less time is taken as UTC)
or epoch seconds/milliseconds (`timestamp_unit = "auto"` tells them apart by magnitude).

Every way a record can be unusable maps to one short reason code: it becomes the
`anomstream-dlq-reason` header of the dead letter and the `reason` label of the rejected counter.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import orjson

from anomstream.stream.config import TelemetryConfig
from anomstream.stream.errors import InvalidRecord

__all__ = ["MAX_SENSORS", "REASONS", "Reading", "TelemetryDecoder"]

REASONS = (
    "empty",
    "oversize",
    "bad_utf8",
    "bad_json",
    "bad_shape",
    "no_machine",
    "no_timestamp",
    "bad_timestamp",
    "no_sensors",
    "bad_value",
    "non_finite",
)
MAX_SENSORS = 1024  # bounds the per-record work and the entities one record can create
MAX_ID_LENGTH = 256
# Epoch values above this are milliseconds: 1e11 s is the year 5138, 1e11 ms is March 1973.
_MS_CUTOFF = 1e11


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
            self._machine(doc, key), self._timestamp(doc.get(self._ts_field)), self._sensors(doc)
        )

    def _machine(self, doc: dict[str, Any], key: bytes | None) -> str:
        machine = doc.get(self._machine_field)
        if machine is None and key:
            try:
                machine = key.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidRecord("no_machine", "record key is not UTF-8") from None
        if not isinstance(machine, str) or not machine or len(machine) > MAX_ID_LENGTH:
            raise InvalidRecord(
                "no_machine", f"'{self._machine_field}' missing, empty, too long or not a string"
            )
        return machine

    def _timestamp(self, raw: Any) -> float:
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
                return parsed.timestamp()
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or unit == "iso":
            raise InvalidRecord("bad_timestamp", f"unusable timestamp {str(original)[:40]!r}")
        seconds = float(raw)
        if unit == "ms" or (unit == "auto" and abs(seconds) >= _MS_CUTOFF):
            seconds /= 1000.0
        if not math.isfinite(seconds) or seconds <= 0:
            raise InvalidRecord("bad_timestamp", f"timestamp out of range: {raw!r}")
        return seconds

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
            number = float(value)
            if not math.isfinite(number):
                raise InvalidRecord("non_finite", f"sensor {name[:64]!r} is {number}")
            if not name or len(name) > MAX_ID_LENGTH:
                raise InvalidRecord("bad_shape", "sensor name empty or too long")
            out[name] = number
        return out


def _lenient_json(value: bytes, error: Exception) -> Any:
    """Second look at what orjson refused, off the hot path, to give the precise reason.

    Python's `json.dumps` writes NaN and Infinity literals, and 1e999 overflows to infinity:
    such records are valid-looking JSON with non-finite values, which deserves `non_finite`
    (raised later, by the sensor check), not `bad_json`.
    """
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRecord("bad_utf8", "value is not valid UTF-8") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidRecord("bad_json", str(error)) from None


def _number_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
