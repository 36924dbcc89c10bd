"""Publish simulated readings to Kafka: the I/O half of the simulator.

The producer is passed in (any object with kafka-python's `send`/`flush`), so the loop is tested
with an in-memory fake and reused by `anomstream simulate` and `anomstream demo` alike.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

import orjson

from anomstream.stream.errors import DeliveryError
from anomstream.stream.simulator import Reading

__all__ = ["produce_readings"]

# Being ahead of schedule by less than this is not worth a sleep: the OS would oversleep anyway.
_MIN_SLEEP = 0.001


def produce_readings(
    producer: Any,
    topic: str,
    readings: Iterable[Reading],
    *,
    rate: float,
    stop_event: threading.Event | None = None,
) -> int:
    """Send `readings` to `topic` (key = machine id, value = JSON) and flush; return how many.

    `rate` is readings per second over all machines, 0 for as fast as the producer takes them.
    Pacing follows an absolute schedule, so short stalls are caught up instead of adding up.
    Setting `stop_event` stops after the current reading; what was sent is still flushed.
    Raises `DeliveryError` when the broker did not acknowledge some readings.
    """
    if rate < 0:
        raise ValueError(f"rate must be >= 0 readings/s, got {rate}")
    stop = stop_event or threading.Event()
    keys: dict[str, bytes] = {}
    failures: list[BaseException] = []
    sent = 0
    started = time.monotonic()
    iterator = iter(readings)
    # Stop and pacing are checked before taking a reading, so a reading taken is a reading sent
    # and the simulator's labels cover exactly what reached the topic.
    while not stop.is_set():
        if rate:
            ahead = started + sent / rate - time.monotonic()
            if ahead > _MIN_SLEEP and stop.wait(ahead):
                break
        reading = next(iterator, None)
        if reading is None:
            break
        key = keys.get(reading.machine_id)
        if key is None:
            key = keys[reading.machine_id] = reading.machine_id.encode()
        future = producer.send(topic, key=key, value=orjson.dumps(reading.record))
        future.add_errback(failures.append)
        sent += 1
    producer.flush()
    if failures:
        raise DeliveryError(
            f"{len(failures)} of {sent} readings were not acknowledged by the broker "
            f"(first error: {failures[0]!r})"
        )
    return sent
