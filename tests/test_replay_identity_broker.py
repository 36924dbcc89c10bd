"""Replay is the service: the same records give the same alert documents on a real broker.

A small three-sensor series (a level shift on one sensor, a row with an absent sensor, a row
the decoder refuses) is turned into records by replay's own code; replay runs them, then the
very same records (keys, values, timestamps) are produced to a fresh one-partition topic and
`anomstream run` consumes them. Every alert document must match field by field, apart from
`detected_at` (replay's clock is the data's, the service's the wall clock), and so must the
dead letters' rows and reasons.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from kafka import KafkaProducer

from anomstream.evaluation.replay import replay_records
from anomstream.evaluation.replay_input import csv_records, read_csv_series
from anomstream.stream.config import load_config
from anomstream.stream.pipeline import DLQ_REASON_HEADER
from kafka_helpers import read_topic, running_service, service_config, wait_until
from replay_helpers import write_shift_series

ABSENT_ROW, REFUSED_ROW = 300, 400


def without_detected_at(alert: dict) -> dict:
    return {k: v for k, v in alert.items() if k != "detected_at"}


def test_replay_and_the_service_publish_identical_alerts(
    kafka_broker: str, unique: str, tmp_path: Path
) -> None:
    topic = f"replay-{unique}"
    shipped = load_config(environ={}).detector.name  # not ANOMSTREAM_TEST_DETECTOR: the alerts
    config = service_config(  # below are those of the shipped default detector
        kafka_broker, unique,
        **{
            "kafka.input_topics": [topic], "kafka.topic_partitions": 1,
            "detector.name": shipped, "detector.warmup": 50,
        },
    )
    source = write_shift_series(
        tmp_path / "press.csv", cells={(ABSENT_ROW, "vib"): "", (REFUSED_ROW, "load"): "inf"}
    )
    series = read_csv_series(source, config.telemetry)
    records = list(csv_records(series, "press-07", config.telemetry, topic))
    expected, dead = replay_records(records, config)
    assert [a["status"] for a in expected] == ["firing", "resolved"]
    assert [(d.offset, d.reason) for d in dead] == [(REFUSED_ROW, "non_finite")]

    producer = KafkaProducer(bootstrap_servers=kafka_broker, acks="all", linger_ms=5)
    for r in records:  # in order, to the one partition: Kafka's offsets are the rows
        producer.send(topic, key=r.key, value=r.value, timestamp_ms=r.timestamp, partition=0)
    producer.flush()
    producer.close()
    stored = read_topic(kafka_broker, topic)
    assert [(s.offset, s.key, s.value, s.timestamp) for s in stored] == [
        (r.offset, r.key, r.value, r.timestamp) for r in records
    ]

    alert_topic = config.kafka.alert_topic
    with running_service(config) as service:
        service.wait_consumed(len(records))
        wait_until(
            lambda: len(read_topic(kafka_broker, alert_topic, timeout=2)) >= len(expected),
            30, what="the service's alerts",
        )
    published = [orjson.loads(m.value) for m in read_topic(kafka_broker, alert_topic)]
    assert [without_detected_at(a) for a in published] == [without_detected_at(a) for a in expected]
    assert published[0]["source"]["topic"] == topic

    dead_letters = [dict(m.headers) for m in read_topic(kafka_broker, config.kafka.dlq_topic)]
    assert [
        (int(h["anomstream-source-offset"]), h[DLQ_REASON_HEADER].decode()) for h in dead_letters
    ] == [(d.offset, d.reason) for d in dead]
