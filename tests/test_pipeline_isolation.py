"""Per-record isolation in the pure pipeline: a bug while processing one record costs that record
(a dead letter with reason internal_error), never the batch or the service."""

from __future__ import annotations

import logging

import orjson
import pytest
from fakes import FakeClock, FakeRecord, validate_alert
from fuzz_records import POISON, register_raising_detector
from kafka_helpers import TEST_SIGNING_KEY
from prometheus_client import CollectorRegistry

from anomstream.stream.config import load_config
from anomstream.stream.metrics import Metrics
from anomstream.stream.pipeline import DLQ_REASON_HEADER, Pipeline


def _record(offset: int, machine: str, value: float, ts: float) -> FakeRecord:
    body = orjson.dumps({"machine_id": machine, "ts": ts, "sensors": {"x": value}})
    return FakeRecord("telemetry", 0, offset, 0, machine.encode(), body)


def test_a_failing_record_is_dead_lettered_and_the_batch_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    buggy = register_raising_detector(monkeypatch.setitem)
    registry = CollectorRegistry()
    config = load_config(
        environ={},
        overrides={
            "state.signing_key": TEST_SIGNING_KEY,
            "detector.name": "ewm-zscore",
            "detector.warmup": 20,
            "detector.templates": [{"name": buggy, "machine": "buggy-*"}],
        },
    )
    pipeline = Pipeline(config, metrics=Metrics(registry), clock=FakeClock())
    # Warm "good" up, then one batch in which "buggy" fails twice around a spike on "good".
    warm = [_record(i, "good", float(i % 3), 1.7e9 + i) for i in range(200)]
    assert pipeline.process(warm).readings == 200
    batch = [
        _record(200, "buggy-1", 1.0, 1.7e9 + 200),
        _record(201, "buggy-1", POISON, 1.7e9 + 201),
        _record(202, "good", 1000.0, 1.7e9 + 202),
        _record(203, "buggy-1", POISON, 1.7e9 + 203),
        _record(204, "good", 1000.0, 1.7e9 + 204),
        _record(205, "buggy-1", 2.0, 1.7e9 + 205),
    ]
    with caplog.at_level(logging.ERROR, logger="anomstream.stream.pipeline"):
        out = pipeline.process(batch)
    assert out.readings == 4  # the two poisoned records are not counted as processed
    assert [m.value for m in out.dead_letters] == [batch[1].value, batch[3].value]
    for letter in out.dead_letters:
        headers = dict(letter.headers)
        assert headers[DLQ_REASON_HEADER] == b"internal_error"
        detail = headers["anomstream-dlq-detail"].decode()
        assert detail.startswith("ZeroDivisionError at fuzz_records:"), detail
        assert letter.key == b"buggy-1"
    assert out.offsets == {("telemetry", 0): 206}
    # The spike on "good", in the same batch, still alerts.
    assert [validate_alert(m.value)["machine_id"] for m in out.alerts] == ["good"]
    assert (
        registry.get_sample_value(
            "anomstream_readings_rejected_total", {"reason": "internal_error"}
        )
        == 2
    )
    assert (
        registry.get_sample_value("anomstream_internal_errors_total", {"type": "ZeroDivisionError"})
        == 2
    )
    # Logged once per kind, with the traceback.
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert "ZeroDivisionError" in errors[0].getMessage()


def test_a_machine_cannot_grow_past_its_sensor_budget() -> None:
    """A record that would push one machine past detector.max_sensors_per_machine models is dead-lettered;
    the machine's known sensors still score, and other machines are unaffected."""
    registry = CollectorRegistry()
    config = load_config(
        environ={}, overrides={"state.signing_key": TEST_SIGNING_KEY, "detector.warmup": 0}
    )
    pipeline = Pipeline(config, metrics=Metrics(registry), clock=FakeClock())

    def record(offset: int, machine: str, names: list[str]) -> FakeRecord:
        body = orjson.dumps(
            {"machine_id": machine, "ts": 1.7e9 + offset, "sensors": dict.fromkeys(names, 1.0)}
        )
        return FakeRecord("telemetry", 0, offset, 0, machine.encode(), body)

    cap = config.detector.max_sensors_per_machine
    full = [f"s{i}" for i in range(cap)]
    out = pipeline.process(
        [
            record(0, "wide", full),
            record(1, "wide", ["one-more"]),
            record(2, "wide", full[:3]),
            record(3, "other", ["one-more"]),
        ]
    )
    assert out.readings == 3
    (letter,) = out.dead_letters
    assert dict(letter.headers)[DLQ_REASON_HEADER] == b"too_many_sensors"
    # cap sensor models of "wide", one of "other", and each machine's machine-wide model
    assert len(pipeline.models) == cap + 1 + 2
    assert (
        registry.get_sample_value(
            "anomstream_readings_rejected_total", {"reason": "too_many_sensors"}
        )
        == 1
    )


def test_a_machine_whose_records_arrive_on_two_partitions_loses_none() -> None:
    """Keyless records, or a key that disagrees with the machine id, put one machine on several
    partitions; a state that compared offsets alone took readings of the partition with the
    lower offsets for replays of what the checkpoint already holds, and skipped them silently."""
    config = load_config(
        environ={}, overrides={"state.signing_key": TEST_SIGNING_KEY, "detector.warmup": 0}
    )
    pipeline = Pipeline(config, metrics=Metrics(CollectorRegistry()), clock=FakeClock())
    first = [_record(i, "m", 1.0, 1.7e9 + i) for i in range(10)]
    other = _record(3, "m", 1.0, 1.7e9 + 10)
    other.partition = 1
    out = pipeline.process([*first, other])
    assert (out.readings, out.skipped) == (11, 0)
