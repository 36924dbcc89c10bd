"""A maintenance window on the real embedded broker: the simulated part replacement of
`test_modes.py`, with the window sent on the control topic while the machine runs (twice: a
replay changes nothing), the service restarted in the middle of the window, and every alert
read back from the alert topic and validated."""

from __future__ import annotations

from typing import Any

import pytest
from fakes import validate_alert
from kafka_helpers import produce, read_topic, running_service, service_config, wait_until
from prometheus_client.parser import text_string_to_metric_families
from test_modes import (
    FAULT_AT, MACHINE, MAINT_END, MAINT_START, TOTAL, alert_index, maintenance_message, part_replacement,
)

pytestmark = pytest.mark.broker

SENT_BEFORE = MAINT_START - 20  # readings before the window is announced
RESTART_AT = (MAINT_START + MAINT_END) // 2  # the service restarts in the middle of the window


def _metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def _replacement_on_the_broker(
    kafka_broker: str, unique: str, *, window: bool = True, **overrides: Any
) -> tuple[list[dict[str, Any]], str]:
    """Run the scenario through the service; returns the alerts and the last /metrics text."""
    config = service_config(kafka_broker, unique, **{"modes.control_topic": f"control-{unique}", **overrides})
    topic, control = config.kafka.input_topics[0], config.modes.control_topic
    data = part_replacement()
    message = [(MACHINE.encode(), maintenance_message())]
    with running_service(config) as service:
        produce(kafka_broker, topic, data[:SENT_BEFORE])
        service.wait_consumed(SENT_BEFORE)
        if window:
            produce(kafka_broker, control, message + message)  # the second one is a replay
            wait_until(
                lambda: _metric(service.http_get("/metrics")[1], "anomstream_control_messages_total",
                                result="duplicate"),
                30, what="the control messages",
            )
        produce(kafka_broker, topic, data[SENT_BEFORE:RESTART_AT])
        service.wait_consumed(RESTART_AT)
        during = service.http_get("/metrics")[1]
    with running_service(config) as service:  # the window is in the checkpointed state
        produce(kafka_broker, topic, data[RESTART_AT:])
        service.wait_consumed(TOTAL - RESTART_AT)
        metrics = service.http_get("/metrics")[1]
    assert _metric(during, "anomstream_control_messages_total", result="applied") == window
    assert _metric(during, "anomstream_machines_in_mode", mode="maintenance") == window
    # After the restart the window comes from the machine's checkpoint, not from a replay.
    assert _metric(metrics, "anomstream_state_restored_total") == 1
    assert _metric(metrics, "anomstream_control_messages_total", result="applied") == 0
    alerts = [validate_alert(r.value) for r in read_topic(kafka_broker, config.kafka.alert_topic)]
    assert all(a["machine_id"] == MACHINE for a in alerts)
    return alerts, metrics


def test_a_replaced_part_does_not_page_but_a_later_fault_does(kafka_broker: str, unique: str) -> None:
    alerts, metrics = _replacement_on_the_broker(kafka_broker, unique)
    summary = [(a["status"], round(alert_index(a))) for a in alerts]
    # The fault open when the window starts resolves on its first reading.
    assert summary[:2] == [("firing", summary[0][1]), ("resolved", MAINT_START)], summary
    assert summary[0][1] < MAINT_START and alerts[0]["alert_id"] == alerts[1]["alert_id"]
    # Nothing during the window (no railed zeros, no gap for the unplugged sensors), nor for the
    # new part's vibration and current after it.
    assert {a["kind"] for a in alerts} == {"anomaly"}, summary
    assert [s for s in summary[2:] if s[1] < FAULT_AT] == [], summary
    # The genuine fault, past the new warm-up, pages on the right sensor.
    later = [a for a in alerts if a["status"] == "firing" and alert_index(a) >= FAULT_AT]
    assert later, summary
    assert FAULT_AT <= alert_index(later[0]) < FAULT_AT + 10
    assert later[0]["sensors"][0]["name"] == "temp_c"
    assert _metric(metrics, "anomstream_machines_in_mode", mode="production") == 1
    assert _metric(metrics, "anomstream_machines_in_mode", mode="maintenance") == 0


@pytest.mark.parametrize("variant", ["resume", "no window"])
def test_the_same_replacement_pages_without_a_window_or_a_rebaseline(
    kafka_broker: str, unique: str, variant: str
) -> None:
    if variant == "resume":
        alerts, _ = _replacement_on_the_broker(kafka_broker, unique, **{"modes.after_maintenance": "resume"})
    else:
        alerts, _ = _replacement_on_the_broker(kafka_broker, unique, window=False)
    during = {(a["kind"], a["sensors"][0]["name"]) for a in alerts
              if a["status"] == "firing" and MAINT_START <= alert_index(a) < MAINT_END}
    if variant == "resume":
        assert during == set()  # the window still holds: only the rebaseline is missing
    else:  # the stopped machine's zeros and the unplugged sensors look like broken sensors
        assert during == {("railed", "vib_rms"), ("railed", "current_a"), ("gap", "pressure_bar"),
                          ("gap", "speed_rpm")}
    firing = [a for a in alerts if a["status"] == "firing" and a["kind"] == "anomaly"
              and MAINT_END <= alert_index(a) < FAULT_AT]
    assert firing, [(a["status"], a["kind"], alert_index(a)) for a in alerts]
    assert alert_index(firing[0]) < MAINT_END + 10  # the new part's level, at once
    assert {"vib_rms", "current_a"} & {s["name"] for s in firing[0]["sensors"]}
