"""Alert messages, schema `anomstream.alert/v1` (JSON Schema: `config/schemas/alert-v1.json`).

An alert's id is derived from what identifies the episode — machine, the sensors that fired and
the event time the anomalous run started — so a replay or a retry after a crash produces the
same id, and consumers can de-duplicate on it. `firing` and `resolved` share the id; the
CloudEvents `ce_id` adds the status, because each is a distinct event.

Messages go out in CloudEvents binary mode: the JSON body is the data, the attributes travel as
`ce_*` headers, key = machine id (so one machine's alerts stay ordered in one partition).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from anomstream.detectors.policy import Transition

__all__ = ["SCHEMA", "AlertSource", "OutgoingMessage", "alert_id", "build_alert", "iso_time"]

SCHEMA = "anomstream.alert/v1"
CE_TYPE_PREFIX = "io.anomstream.alert."


def iso_time(epoch_seconds: float) -> str:
    """RFC 3339 UTC with milliseconds, e.g. `2026-11-24T09:00:00.120Z`."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert_id(machine: str, sensors: list[str], started_at: float, kind: str = "anomaly") -> str:
    """Deterministic id of an alert episode (32 hex chars of SHA-256)."""
    # Millisecond resolution: the same start time always renders to the same text.
    parts = [machine, ",".join(sorted(sensors)), f"{round(started_at * 1000)}"]
    if kind != "anomaly":  # anomaly ids are unchanged from before kinds existed
        parts.append(kind)
    material = "\x1f".join(parts)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class AlertSource:
    """Where the reading that triggered an alert came from."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class OutgoingMessage:
    """A message for the producer: what the pipeline hands to Kafka I/O."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    partition: int | None = None  # None: the producer's partitioner (by key)


def build_alert(
    transition: Transition,
    *,
    machine: str,
    values: dict[str, float],
    event_time: float,
    detected_at: float,
    threshold: float,
    detector: dict[str, str],
    source: AlertSource,
    ce_source: str,
    topic: str,
) -> OutgoingMessage:
    """Render a policy transition as a v1 alert message with CloudEvents headers."""
    shares = dict(transition.sensors) or {name: 1.0 / len(values) for name in values}
    peaks = transition.sensor_scores
    ident = alert_id(machine, list(shares), transition.started_at, transition.kind)
    body: dict[str, Any] = {
        "schema": SCHEMA,
        "alert_id": ident,
        "status": transition.status,
        "kind": transition.kind,
        "severity": transition.severity,
        "machine_id": machine,
        "sensors": [
            {
                "name": name,
                "score": round(peaks.get(name, transition.score), 6),
                "contribution": round(share, 4),
            }
            for name, share in sorted(shares.items(), key=lambda kv: -kv[1])
        ],
        "score": round(transition.score, 6),
        "threshold": threshold,
        "values": values,
        "detector": detector,
        "started_at": iso_time(transition.started_at),
        "event_time": iso_time(event_time),
        "detected_at": iso_time(detected_at),
        "source": {"topic": source.topic, "partition": source.partition, "offset": source.offset},
    }
    if transition.detail:
        body["detail"] = transition.detail
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", f"{ident}:{transition.status}".encode()),
        ("ce_source", ce_source.encode()),
        ("ce_type", f"{CE_TYPE_PREFIX}{transition.status}.v1".encode()),
        ("ce_time", body["detected_at"].encode()),
        ("ce_subject", machine.encode("utf-8")),
        ("content-type", b"application/json"),
    ]
    return OutgoingMessage(topic, machine.encode("utf-8"), orjson.dumps(body), headers)
