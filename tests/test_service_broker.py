"""The service end to end on a real Kafka-protocol broker (embedded Tansu): telemetry in,
alerts and dead letters out, offsets committed, metrics served."""

from __future__ import annotations

import re
from datetime import datetime

import orjson
import pytest
from fakes import validate_alert
from kafka_helpers import produce, produce_sim, read_topic, running_service, service_config

from anomstream.stream.metrics import ALERT_KINDS
from anomstream.stream.pipeline import DLQ_REASON_HEADER
from anomstream.stream.simulator import FaultSpec, Simulator

pytestmark = pytest.mark.broker

# Fault scenario: one fault of each kind, each on its own machine, after the models' warm-up.
# bound = readings after the fault's start within which it must fire.
FAULTS = [
    (FaultSpec("press-01", "temp_c", "spike", start_index=400, duration=2, magnitude=6.0), 2),
    (FaultSpec("lathe-02", "current_a", "level_shift", start_index=420, duration=80, magnitude=5.0), 5),
    (FaultSpec("pump-03", "pressure_bar", "stuck", start_index=440, duration=60), 15),
    (FaultSpec("mill-04", "vib_rms", "noise_burst", start_index=460, duration=60, magnitude=3.0), 10),
    # A drift is visible to a per-sensor model once its offset passes ~4 sd of the sensor's whole
    # range (duty cycle included): it must fire before this one ends.
    (FaultSpec("compressor-05", "temp_c", "drift", start_index=400, duration=300, magnitude=6.0), 300),
]
PER_MACHINE = 850


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_injected_faults_fire_on_the_right_sensor_and_resolve(kafka_broker: str, unique: str) -> None:
    config = service_config(kafka_broker, unique)
    sim = Simulator(machines=5, seed=11, faults=[spec for spec, _ in FAULTS])
    sent = produce_sim(kafka_broker, config.kafka.input_topics[0], sim, 5 * PER_MACHINE)
    with running_service(config) as service:
        service.wait_consumed(sent)
    records = read_topic(kafka_broker, config.kafka.alert_topic)
    alerts = [validate_alert(r.value) for r in records]
    assert len(sim.faults) == len(FAULTS)
    for fault, (_, bound) in zip(sorted(sim.faults, key=lambda f: f.machine), sorted(FAULTS, key=lambda f: f[0].machine)):
        mine = [a for a in alerts if a["machine_id"] == fault.machine]
        statuses = [a["status"] for a in mine]
        assert statuses == ["firing", "resolved"], (fault, mine)
        firing, resolved = mine
        assert fault.sensor in [s["name"] for s in firing["sensors"]], (fault, firing)
        fired_after = (_ts(firing["event_time"]) - fault.start_ts) / sim.interval
        assert -0.5 <= fired_after <= bound, (fault.kind, fired_after)
        assert _ts(resolved["event_time"]) > fault.end_ts
        assert resolved["alert_id"] == firing["alert_id"]
    for record in records:  # Kafka framing: keyed by machine, CloudEvents binary-mode headers
        alert = orjson.loads(record.value)
        headers = dict(record.headers)
        assert record.key == alert["machine_id"].encode()
        assert headers["ce_specversion"] == b"1.0"
        assert headers["ce_id"] == f"{alert['alert_id']}:{alert['status']}".encode()
        assert headers["ce_type"] == f"io.anomstream.alert.{alert['status']}.v1".encode()
        assert headers["content-type"] == b"application/json"
        assert headers["ce_source"] and headers["ce_time"]


# Budget: at most 1 false alert per 10,000 readings (measured: 0 in seeds 0-2).
CLEAN_READINGS = 20_000
FALSE_ALERT_BUDGET = CLEAN_READINGS // 10_000


def test_clean_stream_stays_within_the_false_alert_budget(kafka_broker: str, unique: str) -> None:
    config = service_config(kafka_broker, unique)
    sim = Simulator(machines=5, seed=5, fault_rate=0)
    sent = produce_sim(kafka_broker, config.kafka.input_topics[0], sim, CLEAN_READINGS)
    with running_service(config) as service:
        service.wait_consumed(sent, timeout=120)
    firing = [a for a in map(validate_alert, (r.value for r in read_topic(kafka_broker, config.kafka.alert_topic)))
              if a["status"] == "firing"]
    assert len(firing) <= FALSE_ALERT_BUDGET, firing


MALFORMED = [
    (b"press-01", b"{not json", "bad_json"),
    (b"press-01", b"\xff\xfe\x00", "bad_utf8"),
    (b"press-01", b'{"machine_id": "press-01", "sensors": {"temp_c": 1}}', "no_timestamp"),
    (b"press-01", b'{"machine_id": "press-01", "ts": 1.7e9, "sensors": {"temp_c": "hot"}}', "bad_value"),
    (b"press-01", b'{"machine_id": "press-01", "ts": 1.7e9, "sensors": {"temp_c": NaN}}', "non_finite"),
    (b"press-01", b"[1, 2, 3]", "bad_shape"),
    (b"press-01", b'{"machine_id": "press-01", "ts": 1.7e9}', "no_sensors"),
]


def _sample(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{labels} not in /metrics"
    return float(match.group(1))


def test_dead_letters_metrics_and_health(kafka_broker: str, unique: str) -> None:
    config = service_config(kafka_broker, unique, **{"detector.warmup": 0})
    sim = Simulator(machines=2, seed=3, fault_rate=0)
    valid = [(r.machine_id.encode(), orjson.dumps(r.record)) for r in sim.readings(300)]
    # Malformed records interleaved with valid ones, so they share batches.
    items: list[tuple[bytes, bytes]] = []
    for i, pair in enumerate(valid):
        items.append(pair)
        if i % 40 == 0 and i // 40 < len(MALFORMED):
            key, value, _ = MALFORMED[i // 40]
            items.append((key, value))
    sent = produce(kafka_broker, config.kafka.input_topics[0], items)
    with running_service(config) as service:
        service.wait_consumed(sent)
        status, metrics = service.http_get("/metrics")
        assert status == 200
        assert service.http_get("/healthz")[0] == 200
        ready_status, ready_body = service.http_get("/readyz")
        assert ready_status == 200, ready_body
        assert service.http_get("/nope")[0] == 404
    topic = config.kafka.input_topics[0]
    assert _sample(metrics, "anomstream_readings_consumed_total", f'{{topic="{topic}"}}') == sent
    for _, _, reason in MALFORMED:
        assert _sample(metrics, "anomstream_readings_rejected_total", f'{{reason="{reason}"}}') == 1
    assert _sample(metrics, "anomstream_readings_scored_total") == 300 * 5  # 5 sensors, no warm-up
    assert _sample(metrics, "anomstream_end_to_end_latency_seconds_count") == 300
    assert _sample(metrics, "anomstream_active_models") == 2 * (5 + 1)  # sensor models + machine model
    assert _sample(metrics, "anomstream_partitions_assigned") == 2
    assert 'anomstream_build_info{' in metrics
    dead = read_topic(kafka_broker, config.kafka.dlq_topic)
    assert [(r.value, dict(r.headers)[DLQ_REASON_HEADER].decode()) for r in dead] == [
        (value, reason) for _, value, reason in MALFORMED
    ]
    alerts = read_topic(kafka_broker, config.kafka.alert_topic)
    published = sum(
        _sample(metrics, "anomstream_alerts_total", f'{{kind="{kind}",severity="{sev}",status="{st}"}}')
        for kind in ALERT_KINDS for sev in ("warning", "critical") for st in ("firing", "resolved")
        if f'kind="{kind}",severity="{sev}",status="{st}"' in metrics
    )
    assert published == len(alerts)


def test_restart_resumes_from_committed_offsets_without_realerting(kafka_broker: str, unique: str) -> None:
    config = service_config(kafka_broker, unique)
    topic = config.kafka.input_topics[0]
    sim = Simulator(machines=2, seed=9, faults=[
        FaultSpec("press-01", "temp_c", "spike", start_index=300, duration=2, magnitude=7.0),
    ])
    first = produce_sim(kafka_broker, topic, sim, 2 * 500)
    with running_service(config) as service:
        service.wait_consumed(first)
    after_first = [validate_alert(r.value) for r in read_topic(kafka_broker, config.kafka.alert_topic)]
    assert [a["status"] for a in after_first] == ["firing", "resolved"]

    second = produce_sim(kafka_broker, topic, sim, 2 * 300)
    with running_service(config) as service:
        service.wait_consumed(second)
        # Only the new records: the committed ones were not read again.
        assert service.readings == second
    after_second = [validate_alert(r.value) for r in read_topic(kafka_broker, config.kafka.alert_topic)]
    assert after_second[: len(after_first)] == after_first
    assert [a["alert_id"] for a in after_second].count(after_first[0]["alert_id"]) == 2  # firing+resolved once
