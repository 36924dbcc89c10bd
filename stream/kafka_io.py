"""Thin kafka-python wrappers: client construction, topic creation, acknowledged publishing.

Nothing here knows about telemetry or detectors; `stream.service` wires these to the pipeline.
Works against any Kafka-protocol broker (Apache Kafka, Tansu).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from stream.alerts import OutgoingMessage
from stream.config import KafkaConfig
from stream.errors import BrokerUnavailable, DeliveryError

__all__ = [
    "make_consumer",
    "make_producer",
    "ensure_topics",
    "publish",
    "commit_offsets",
    "partition_lag",
]

log = logging.getLogger(__name__)


def _common(config: KafkaConfig) -> dict[str, Any]:
    return {
        "bootstrap_servers": config.bootstrap_servers.split(","),
        "client_id": config.client_id,
        "security_protocol": config.security_protocol,
    }


def make_consumer(config: KafkaConfig, *, listener: Any = None) -> KafkaConsumer:
    """A group consumer subscribed to the input topics; offsets are committed by us, never auto."""
    consumer = KafkaConsumer(
        **_common(config),
        group_id=config.group_id,
        enable_auto_commit=False,
        auto_offset_reset=config.auto_offset_reset,
        session_timeout_ms=config.session_timeout_ms,
        heartbeat_interval_ms=config.heartbeat_interval_ms,
        max_poll_records=config.max_poll_records,
        fetch_max_wait_ms=config.fetch_max_wait_ms,
        # Output produced inside a transaction (exactly-once mode) is only seen once committed.
        isolation_level="read_committed",
    )
    consumer.subscribe(list(config.input_topics), listener=listener)
    return consumer


def make_producer(config: KafkaConfig) -> KafkaProducer:
    """An idempotent, acks=all producer: retries never duplicate, acks mean durable."""
    return KafkaProducer(
        **_common(config),
        acks="all",
        enable_idempotence=True,
        linger_ms=config.producer_linger_ms,
        retries=5,
    )


def ensure_topics(config: KafkaConfig, topics: Iterable[str]) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    try:
        admin = KafkaAdminClient(**_common(config), request_timeout_ms=10000)
    except KafkaError as exc:
        raise BrokerUnavailable(f"cannot reach Kafka at {config.bootstrap_servers}: {exc}") from exc
    try:
        existing = set(admin.list_topics())
        missing = [t for t in dict.fromkeys(topics) if t not in existing]
        if missing:
            try:
                admin.create_topics(
                    [NewTopic(t, config.topic_partitions, 1) for t in missing], timeout_ms=10000
                )
            except TopicAlreadyExistsError:
                pass  # another instance won the race
            log.info("created topics %s", ", ".join(missing))
        return missing
    finally:
        admin.close()


def publish(producer: KafkaProducer, messages: Sequence[OutgoingMessage], timeout: float = 30.0) -> None:
    """Send `messages` and wait until the broker acknowledged every one, else `DeliveryError`."""
    if not messages:
        return
    futures = [
        producer.send(m.topic, key=m.key, value=m.value, headers=m.headers) for m in messages
    ]
    producer.flush(timeout=timeout)
    failed = [f.exception for f in futures if not f.succeeded()]
    if failed:
        raise DeliveryError(f"{len(failed)} of {len(futures)} messages not acknowledged: {failed[0]!r}")


def commit_offsets(consumer: KafkaConsumer, offsets: dict[tuple[str, int], int]) -> None:
    """Commit next-offsets per (topic, partition), synchronously."""
    if offsets:
        consumer.commit(
            {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()}
        )


def partition_lag(consumer: KafkaConsumer) -> dict[TopicPartition, int]:
    """High watermark minus position, for assigned partitions whose watermark is known."""
    lag: dict[TopicPartition, int] = {}
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is None:
            continue
        try:
            position = consumer.position(tp, timeout_ms=100)
        except KafkaError:
            continue
        if position is not None:
            lag[tp] = max(0, high - position)
    return lag
