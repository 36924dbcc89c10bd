"""Property-based tests of the telemetry decoder (Hypothesis): whatever the bytes, the decoder
returns a safe `Reading` or raises `InvalidRecord` with a known reason, never anything else."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anomstream.stream.config import TelemetryConfig
from anomstream.stream.errors import InvalidRecord
from anomstream.stream.telemetry import (
    MAX_EVENT_TIME,
    MAX_ID_LENGTH,
    MIN_EVENT_TIME,
    REASONS,
    Reading,
    TelemetryDecoder,
)

DECODER = TelemetryDecoder(TelemetryConfig())
# deadline=None: a loaded CI machine must not turn a slow example into a failure.
SETTINGS = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

# Any JSON value, with the hostile corners weighted in: huge ints, non-finite floats, every
# code point (lone surrogates included: Python's json writes them as escapes).
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(codec=None), max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)
names = st.text(
    st.characters(codec=None), min_size=0, max_size=MAX_ID_LENGTH + 4
) | st.sampled_from(["press-01", "\ud800", "a\u0000", "\u200f", " ", "", "🔥", "e\u0301"])
timestamps = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.datetimes().map(lambda d: d.isoformat())
    | json_values
)
sensor_values = st.floats() | st.integers(min_value=-(10**400), max_value=10**400) | json_values
anything = st.fixed_dictionaries(
    {},
    optional={
        "machine_id": names | json_values,
        "ts": timestamps,
        "sensors": st.dictionaries(names, sensor_values, max_size=6) | json_values,
    },
)
# Mostly well-formed, one hostile part: reaches the checks behind the first ones.
near_valid = st.fixed_dictionaries(
    {
        "machine_id": names | st.just("press-01"),
        "ts": st.floats(1e9, 4e9) | timestamps,
        "sensors": st.dictionaries(
            names | st.just("temp_c"), sensor_values | st.floats(-1e6, 1e6), min_size=1, max_size=4
        ),
    }
)
documents = anything | near_valid
keys = st.none() | st.binary(max_size=40) | names.map(lambda s: s.encode("utf-8", "surrogatepass"))


def _check(key: bytes | None, value: bytes | None) -> None:
    try:
        reading = DECODER.decode(key, value)
    except InvalidRecord as exc:
        assert exc.reason in REASONS, exc.reason
        return
    _assert_safe(reading)


def _assert_safe(reading: Reading) -> None:
    names = [reading.machine, *reading.sensors]
    for name in names:
        assert 0 < len(name) <= MAX_ID_LENGTH and not name.isspace()
        name.encode("utf-8")  # a Kafka key, a label value
        assert all(ch.isprintable() for ch in name), repr(name)
    assert isinstance(reading.event_time, float) and math.isfinite(reading.event_time)
    assert MIN_EVENT_TIME < reading.event_time <= MAX_EVENT_TIME
    assert reading.sensors and all(
        type(v) is float and math.isfinite(v) for v in reading.sensors.values()
    )
    # What the checkpoint, the metrics and the alert body do with it must work.
    orjson.dumps({"machine_id": reading.machine, "values": reading.sensors})


def _dump(doc: Any) -> bytes:
    try:
        return json.dumps(doc).encode()  # NaN, Infinity, escaped surrogates: as Python writes them
    except ValueError:  # an integer of more than 4300 digits cannot even be written
        return b"{}"


@SETTINGS
@given(doc=documents, key=keys)
def test_any_json_document_decodes_safely_or_is_rejected_with_a_reason(
    doc: dict[str, Any], key: bytes | None
) -> None:
    _check(key, _dump(doc))


@SETTINGS
@given(value=st.binary(max_size=300), key=keys)
def test_any_bytes_decode_safely_or_are_rejected_with_a_reason(
    value: bytes, key: bytes | None
) -> None:
    _check(key, value)


@SETTINGS
@given(doc=documents, key=keys, data=st.data())
def test_mutated_json_decodes_safely_or_is_rejected_with_a_reason(
    doc: dict[str, Any], key: bytes | None, data: st.DataObject
) -> None:
    raw = bytearray(_dump(doc))
    for _ in range(data.draw(st.integers(0, 4))):  # bit flips and a truncation of real JSON
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    _check(key, bytes(raw[: data.draw(st.integers(0, len(raw)))]))


@SETTINGS
@given(
    machine=names,
    sensors=st.dictionaries(names, st.floats(), min_size=1, max_size=4),
    ts=st.floats(1e9, 4e9),
)
def test_valid_looking_records_are_read_exactly_when_their_names_are_safe(
    machine: str, sensors: dict[str, float], ts: float
) -> None:
    try:
        reading = DECODER.decode(None, _dump({"machine_id": machine, "ts": ts, "sensors": sensors}))
    except InvalidRecord as exc:
        assert exc.reason in REASONS
        return
    _assert_safe(reading)
    assert reading.machine == machine and reading.sensors == sensors
