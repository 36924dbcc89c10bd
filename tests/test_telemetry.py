from __future__ import annotations

import orjson
import pytest

from anomstream.stream.config import TelemetryConfig
from anomstream.stream.errors import InvalidRecord
from anomstream.stream.telemetry import TelemetryDecoder

DECODER = TelemetryDecoder(TelemetryConfig())


def _value(**doc: object) -> bytes:
    return orjson.dumps(doc)


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2026-11-24T09:00:00.120Z", 1795510800.12),
        ("2026-11-24T10:00:00.120+01:00", 1795510800.12),
        ("2026-11-24T09:00:00.120", 1795510800.12),  # zone-less: UTC
        (1795510800.12, 1795510800.12),
        (1795510800120, 1795510800.12),  # milliseconds, told apart by magnitude
        ("1795510800.12", 1795510800.12),
    ],
)
def test_timestamps(ts: object, expected: float) -> None:
    reading = DECODER.decode(b"m1", _value(machine_id="m1", ts=ts, sensors={"t": 1}))
    assert reading.event_time == pytest.approx(expected, abs=1e-3)


def test_machine_falls_back_to_key_and_fields_are_configurable() -> None:
    decoder = TelemetryDecoder(TelemetryConfig(machine_field="m", timestamp_field="time", sensors_field="v"))
    reading = decoder.decode(b"press-1", _value(time=1.7e9, v={"a": 1, "b": 2.5}))
    assert (reading.machine, reading.sensors) == ("press-1", {"a": 1.0, "b": 2.5})


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"m", None, "empty"),
        (b"m", b"", "empty"),
        (b"m", b"x" * 70000, "oversize"),
        (b"m", b"\xff\xfe{", "bad_utf8"),
        (b"m", b"{not json", "bad_json"),
        (b"m", b'{"ts": 1700000000, "sensors": {"a": NaN}}', "non_finite"),
        (b"m", b'{"ts": 1700000000, "sensors": {"a": -Infinity}}', "non_finite"),
        (b"m", b'{"ts": NaN, "sensors": {"a": 1}}', "bad_timestamp"),
        (b"m", b"[1, 2]", "bad_shape"),
        (None, _value(ts=1.7e9, sensors={"a": 1}), "no_machine"),
        (b"m", _value(machine_id=5, ts=1.7e9, sensors={"a": 1}), "no_machine"),
        (b"m", _value(sensors={"a": 1}), "no_timestamp"),
        (b"m", _value(ts="yesterday", sensors={"a": 1}), "bad_timestamp"),
        (b"m", _value(ts=True, sensors={"a": 1}), "bad_timestamp"),
        (b"m", _value(ts=-5, sensors={"a": 1}), "bad_timestamp"),
        (b"m", _value(ts=1.7e9), "no_sensors"),
        (b"m", _value(ts=1.7e9, sensors={}), "no_sensors"),
        (b"m", _value(ts=1.7e9, sensors=[1, 2]), "no_sensors"),
        (b"m", _value(ts=1.7e9, sensors={"a": "12"}), "bad_value"),
        (b"m", _value(ts=1.7e9, sensors={"a": None}), "bad_value"),
        (b"m", _value(ts=1.7e9, sensors={"a": True}), "bad_value"),
        (b"m", b'{"ts": 1700000000, "sensors": {"a": 1e999}}', "non_finite"),
        (b"m", _value(ts=1.7e9, sensors={str(i): 1 for i in range(1025)}), "bad_shape"),
    ],
)
def test_invalid_records_have_reasons(key: bytes | None, value: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidRecord) as info:
        DECODER.decode(key, value)
    assert info.value.reason == reason
