"""In-memory stand-ins for pure-logic tests: records shaped like kafka-python's ConsumerRecord."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import jsonschema
import orjson

ALERT_SCHEMA = json.loads(
    resources.files("anomstream.config").joinpath("schemas/alert-v1.json").read_text("utf-8")
)
_VALIDATOR = jsonschema.Draft202012Validator(ALERT_SCHEMA, format_checker=jsonschema.FormatChecker())


def validate_alert(value: bytes) -> dict[str, Any]:
    """Decode an alert message value and validate it against the published JSON Schema."""
    alert = orjson.loads(value)
    _VALIDATOR.validate(alert)
    return alert


@dataclass
class FakeRecord:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def records_from(readings: Any, topic: str = "telemetry", partitions: int = 2) -> list[FakeRecord]:
    """FakeRecords from simulator readings, partitioned by machine like a keyed producer."""
    offsets = [0] * partitions
    out = []
    for r in readings:
        p = hash(r.machine_id) % partitions
        out.append(
            FakeRecord(topic, p, offsets[p], int(r.ts * 1000), r.machine_id.encode(), orjson.dumps(r.record))
        )
        offsets[p] += 1
    return out


def duty_cycle(i: int, period: int = 240) -> float:
    """A machine's load in [0, 1] at reading i: a trapezoid that ramps up, holds, ramps down and
    idles, once per `period` readings."""
    position = (i % period) / period
    return min(max(min(position / 0.1, (0.6 - position) / 0.1), 0.0), 1.0)
