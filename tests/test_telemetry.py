from __future__ import annotations

import orjson
import pytest

from anomstream.stream.config import TelemetryConfig
from anomstream.stream.errors import InvalidRecord
from anomstream.detectors.registry import build_detector, detector_names
from anomstream.stream.telemetry import MAX_ABS_VALUE, REASONS, TelemetryDecoder

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


# ------------------------------------------------------------------ hostile input (issue 9)


def test_poison_pill_integer_beyond_float_range_is_out_of_range() -> None:
    """Issue 9: `10**400` raised OverflowError out of the decoder and killed the service."""
    value = b'{"machine_id": "m", "ts": 1795000000, "sensors": {"a": 1' + b"0" * 400 + b"}}"
    with pytest.raises(InvalidRecord) as info:
        DECODER.decode(b"m", value)
    assert info.value.reason == "out_of_range"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (b"m", b'{"machine_id": "\\ud800", "ts": 1795000000, "sensors": {"a": 1}}'),
        (b"m", b'{"machine_id": "press-\\udfff", "ts": 1795000000, "sensors": {"a": 1}}'),
        (b"\xed\xa0\x80", b'{"ts": 1795000000, "sensors": {"a": 1}}'),  # a surrogate, UTF-8-ish
    ],
)
def test_poison_pill_lone_surrogate_machine_id_is_rejected(key: bytes, value: bytes) -> None:
    """Issue 9: a lone surrogate (legal JSON) broke the checkpoint's key encoding, forever."""
    with pytest.raises(InvalidRecord) as info:
        DECODER.decode(key, value)
    assert info.value.reason == "bad_machine_id"


def _doc(machine: object = "m", ts: object = 1795000000, sensors: object = None) -> bytes:
    import json

    # json, not orjson: it writes lone surrogates as escapes, as a hostile producer would.
    return json.dumps({"machine_id": machine, "ts": ts, "sensors": sensors or {"a": 1.0}}).encode()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (_doc(machine="x\u0000y"), "bad_machine_id"),
        (_doc(machine="\u200fpress"), "bad_machine_id"),  # RTL mark (Cf)
        (_doc(machine="a\u2028b"), "bad_machine_id"),  # line separator
        (_doc(machine="a\nb"), "bad_machine_id"),
        (_doc(machine="   "), "bad_machine_id"),
        (_doc(machine="m" * 257), "bad_machine_id"),
        (_doc(machine=""), "no_machine"),
        (_doc(sensors={"a\u0000": 1.0}), "bad_shape"),
        (_doc(sensors={"\ud800": 1.0}), "bad_shape"),
        (_doc(sensors={"\ufeffa": 1.0}), "bad_shape"),
        (_doc(sensors={" ": 1.0}), "bad_shape"),
        (_doc(sensors={"s" * 257: 1.0}), "bad_shape"),
        (_doc(sensors={"a": 1e308}), "out_of_range"),
        (_doc(sensors={"a": -1e39}), "out_of_range"),
        (_doc(sensors={"a": -(10**400)}), "out_of_range"),
        (_doc(sensors={"a": [1.0]}), "bad_value"),
        (_doc(sensors={"a": {"b": 1.0}}), "bad_value"),
        (_doc(ts="10000-01-01T00:00:00Z"), "bad_timestamp"),
        (_doc(ts="0001-01-01T00:00:00+14:00"), "bad_timestamp"),
        (_doc(ts="2200-01-01T00:00:01Z"), "bad_timestamp"),
        (_doc(ts=1e300), "bad_timestamp"),
        (_doc(ts=10**400), "bad_timestamp"),
        (_doc(ts=-1), "bad_timestamp"),
        (_doc(ts=0), "bad_timestamp"),
        (_doc(ts=7.3e9), "bad_timestamp"),  # seconds, after 2200
        (_doc(ts="1e999"), "bad_timestamp"),
        (_doc(ts=[1795000000]), "bad_timestamp"),
        (b"[" * 5000 + b"]" * 5000, "bad_json"),
        (b'{"machine_id": "m", "ts": 1795000000, "sensors": {"a": 1' + b"0" * 4400 + b"}}", "bad_json"),
    ],
)
def test_hostile_records_have_reasons(value: bytes, reason: str) -> None:
    with pytest.raises(InvalidRecord) as info:
        DECODER.decode(b"m", value)
    assert info.value.reason == reason
    assert reason in REASONS


@pytest.mark.parametrize(
    ("machine", "sensors"),
    [
        ("🔥", {"e\u0301": 1.0}),  # emoji, combining accent
        ("שלום-1", {"温度": -1e38, "tiny": 5e-324, "big": 1e38}),
        ("m" * 256, {"s" * 256: 0.0}),
        ("press 01", {"a": float(2**64)}),
    ],
)
def test_odd_but_safe_names_and_extreme_finite_values_are_accepted(machine: str, sensors: dict) -> None:
    reading = DECODER.decode(None, _doc(machine=machine, sensors=sensors))
    assert (reading.machine, reading.sensors) == (machine, sensors)
    orjson.dumps({reading.machine: reading.sensors})  # a safe JSON key, Kafka key and label
    reading.machine.encode("utf-8")


def test_key_fallback_obeys_the_machine_rules() -> None:
    value = orjson.dumps({"ts": 1795000000, "sensors": {"a": 1.0}})
    assert DECODER.decode("é-1".encode(), value).machine == "é-1"
    for key in (b"\xff", b"a\x00b", b"k" * 300, b"  "):
        with pytest.raises(InvalidRecord) as info:
            DECODER.decode(key, value)
        assert info.value.reason == "bad_machine_id", key


@pytest.mark.parametrize("name", detector_names())
def test_detectors_stay_finite_at_the_decoders_value_bounds(name: str) -> None:
    """What the decoder lets through (|x| <= MAX_ABS_VALUE, denormals) never breaks a detector:
    scores stay in [0, 1], during and after the extremes."""
    detector = build_detector(name)
    extremes = [MAX_ABS_VALUE, -MAX_ABS_VALUE, 5e-324, -5e-324, 0.0]
    values = [float(i % 5) for i in range(200)] + extremes * 3 + [float(i % 5) for i in range(200)]
    fused = getattr(detector, "score_learn_one", None)
    for v in values:
        x = {"value": v}
        if fused is not None:
            score = fused(x)
        else:
            score = detector.score_one(x)
            detector.learn_one(x)
        assert 0.0 <= score <= 1.0, (name, v, score)
