"""kafka-python's reconnect noise is throttled; anomstream's own lines never are."""

from __future__ import annotations

import logging

from anomstream.stream.log_throttle import KafkaLogThrottle
from fakes import FakeClock


def _record(name: str, msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ConnectionRefusedError(111, "refused")
        except ConnectionRefusedError as error:
            exc_info = (type(error), error, error.__traceback__)
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, exc_info)


def test_kafka_records_pass_once_per_interval_and_kind_without_traceback() -> None:
    clock = FakeClock(0.0)
    throttle = KafkaLogThrottle(interval=60.0, clock=clock)
    first = _record("kafka.net.manager", "Connection failed: %s", "ECONNREFUSED", exc=True)
    assert throttle.filter(first) and first.exc_info is None
    # The same kind again, with other arguments: dropped for the interval.
    assert not throttle.filter(_record("kafka.net.manager", "Connection failed: %s", "EHOSTUNREACH"))
    # Another kind passes at once.
    assert throttle.filter(_record("kafka.coordinator", "Authorization failed for group %s", "g"))
    clock.now = 61.0
    assert throttle.filter(_record("kafka.net.manager", "Connection failed: %s", "ECONNREFUSED"))


def test_other_records_are_untouched() -> None:
    throttle = KafkaLogThrottle(interval=60.0, clock=FakeClock(0.0))
    for _ in range(3):
        record = _record("anomstream.stream.readiness", "broker unreachable", exc=True)
        assert throttle.filter(record) and record.exc_info is not None
