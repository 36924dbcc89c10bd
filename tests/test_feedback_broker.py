"""Operator feedback on the real embedded broker: alerts fire, feedback is produced to the
feedback topic, resolved alerts come back on the alert topic; each message is applied once, also
across a restart of the service (the applied feedback is in the checkpointed state)."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from fakes import validate_alert
from kafka_helpers import (
    RunningService,
    produce,
    produce_sim,
    read_topic,
    running_service,
    service_config,
    wait_until,
)

from anomstream.stream.feedback import SCHEMA
from anomstream.stream.pipeline import DLQ_REASON_HEADER
from anomstream.stream.simulator import FaultSpec, Simulator

pytestmark = pytest.mark.broker

# One level shift per machine, still on when the stream ends: each machine has one alert open.
MACHINES = ("press-01", "lathe-02", "pump-03")
FAULTS = [
    FaultSpec("press-01", "temp_c", "level_shift", start_index=400, duration=200, magnitude=6.0),
    FaultSpec("lathe-02", "current_a", "level_shift", start_index=400, duration=200, magnitude=6.0),
    FaultSpec("pump-03", "pressure_bar", "level_shift", start_index=400, duration=200, magnitude=6.0),
]
PER_MACHINE = 450


def _feedback(alert: dict[str, Any], action: str, **extra: Any) -> tuple[bytes, bytes]:
    message = {"schema": SCHEMA, "alert_id": alert["alert_id"], "machine_id": alert["machine_id"],
               "action": action, "by": "cmms", "at": "2026-12-02T03:00:00Z", **extra}
    return alert["machine_id"].encode(), orjson.dumps(message)


def _counted(metrics: str, action: str, result: str) -> float:
    labels = f'{{action="{action}",result="{result}"}}'
    match = re.search(rf"^anomstream_feedback_total{re.escape(labels)} (\S+)$", metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _wait_counted(service: RunningService, once: list[tuple[str, str]]) -> str:
    """Wait until each (action, result) was counted once; returns the metrics page."""
    def done() -> str | None:
        metrics = service.http_get("/metrics")[1]
        return metrics if all(_counted(metrics, *labels) == 1 for labels in once) else None

    return wait_until(done, 60, what=f"feedback counted: {once}")


def _alerts(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    return [validate_alert(r.value) for r in read_topic(bootstrap, topic)]


def _wait_alerts(bootstrap: str, topic: str, count: int) -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]] | None:
        alerts = _alerts(bootstrap, topic)
        return alerts if len(alerts) >= count else None

    return wait_until(enough, 30, what=f"{count} alerts on {topic}")


def test_each_feedback_kind_is_applied_once_even_across_a_restart(kafka_broker: str, unique: str) -> None:
    config = service_config(kafka_broker, unique)  # its own feedback topic, co-partitioned
    alert_topic, feedback_topic = config.kafka.alert_topic, config.feedback.topic
    sim = Simulator(machines=len(MACHINES), seed=5, fault_rate=0, faults=FAULTS)
    sent = produce_sim(kafka_broker, config.kafka.input_topics[0], sim, len(MACHINES) * PER_MACHINE)

    with running_service(config) as service:
        service.wait_consumed(sent)
        firing = {a["machine_id"]: a for a in _alerts(kafka_broker, alert_topic)}
        assert sorted(firing) == sorted(MACHINES) and {a["status"] for a in firing.values()} == {"firing"}
        wrong, real, serviced = (firing[m] for m in MACHINES)
        produce(kafka_broker, feedback_topic, [
            _feedback(wrong, "false_positive", note="calibration run"),
            _feedback(real, "confirmed"),
            _feedback(serviced, "maintenance_done"),  # default: the alert's sensors
            (b"press-01", b"{not json"),
            _feedback({**wrong, "alert_id": "f" * 32}, "confirmed"),
        ])
        _wait_counted(service, [("false_positive", "applied"), ("confirmed", "applied"),
                                ("maintenance_done", "applied"), ("confirmed", "unknown_alert")])
        resolved = [a for a in _wait_alerts(kafka_broker, alert_topic, 5) if a["status"] == "resolved"]
    assert sorted((a["machine_id"], a["alert_id"], a["detail"]) for a in resolved) == sorted([
        (wrong["machine_id"], wrong["alert_id"], "false_positive by cmms: calibration run"),
        (serviced["machine_id"], serviced["alert_id"], "maintenance_done by cmms"),
    ])
    dead = read_topic(kafka_broker, config.kafka.dlq_topic)
    assert [dict(r.headers)[DLQ_REASON_HEADER] for r in dead] == [b"bad_feedback", b"unknown_alert"]

    # A new instance of the same group: the machines' state comes from the changelog, the
    # feedback topic resumes from its committed offsets (the messages above are not read again).
    with running_service(config) as service:
        produce(kafka_broker, feedback_topic, [  # the same three messages again ...
            _feedback(wrong, "false_positive", note="calibration run"),
            _feedback(real, "confirmed"),
            _feedback(serviced, "maintenance_done"),
            _feedback(real, "maintenance_done"),  # ... and a new one, on the alert still open
        ])
        metrics = _wait_counted(service, [("false_positive", "duplicate"), ("confirmed", "duplicate"),
                                          ("maintenance_done", "duplicate"), ("maintenance_done", "applied")])
        alerts = _wait_alerts(kafka_broker, alert_topic, 6)
    # Not applied a second time, and the first messages were not read again (committed offsets):
    # each duplicate was counted once.
    assert _counted(metrics, "false_positive", "applied") == _counted(metrics, "confirmed", "applied") == 0
    assert len(alerts) == 6  # three firing, three resolved: none twice
    assert [(a["machine_id"], a["status"]) for a in alerts if a["alert_id"] == wrong["alert_id"]] == [
        (wrong["machine_id"], "firing"), (wrong["machine_id"], "resolved")]
    (last,) = [a for a in alerts if a["alert_id"] == real["alert_id"] and a["status"] == "resolved"]
    assert last["detail"] == "maintenance_done by cmms"
