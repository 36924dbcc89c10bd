"""Thin kafka-python wrappers: client construction, topic creation and inspection, acknowledged
publishing.

Nothing here knows about telemetry or detectors; `anomstream.stream.service` wires these to the pipeline.
Works against any Kafka-protocol broker (Apache Kafka, Tansu).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as kafka_errors
from kafka.admin import NewTopic
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from anomstream.stream.alerts import OutgoingMessage
from anomstream.stream.assignor import CoPartitionedAssignor
from anomstream.stream.config import KafkaConfig, kafka_client_options
from anomstream.stream.errors import BrokerUnavailable, DeliveryError, TopicLayoutError

__all__ = [
    "as_commit_offsets",
    "close_producer",
    "commit_offsets",
    "common_client_config",
    "ensure_topics",
    "make_consumer",
    "make_producer",
    "partition_counts",
    "partition_lag",
    "publish",
]

log = logging.getLogger(__name__)


def common_client_config(config: KafkaConfig) -> dict[str, Any]:
    """What every client of the service gets: servers, client id and the security settings
    (TLS, SASL) of `kafka_client_options`; the consumer, producer, admin, changelog reader and
    the start-up wait all build from this one mapping."""
    return {
        "bootstrap_servers": [s.strip() for s in config.bootstrap_servers.split(",") if s.strip()],
        "client_id": config.client_id,
        **kafka_client_options(config),
    }


def make_consumer(
    config: KafkaConfig, *, listener: Any = None, side_topics: Sequence[str] = ()
) -> KafkaConsumer:
    """A group consumer subscribed to the input topics and `side_topics` (feedback, control);
    offsets are committed by us, never auto. Partition p of every subscribed topic goes to one
    instance (`CoPartitionedAssignor`)."""
    consumer = KafkaConsumer(
        **common_client_config(config),
        group_id=config.group_id,
        enable_auto_commit=False,
        auto_offset_reset=config.auto_offset_reset,
        session_timeout_ms=config.session_timeout_ms,
        heartbeat_interval_ms=config.heartbeat_interval_ms,
        max_poll_records=config.max_poll_records,
        fetch_max_wait_ms=config.fetch_max_wait_ms,
        # Output produced inside a transaction (exactly-once mode) is only seen once committed.
        isolation_level="read_committed",
        # Range stays second so a group mid-upgrade (old members offer only range) still forms.
        partition_assignment_strategy=(CoPartitionedAssignor, RangePartitionAssignor),
    )
    consumer.subscribe([*config.input_topics, *side_topics], listener=listener)
    return consumer


def make_producer(config: KafkaConfig, *, transactional_id: str | None = None) -> KafkaProducer:
    """An idempotent, acks=all producer: retries never duplicate, acks mean durable.

    With `transactional_id`, a transactional producer (exactly-once mode), initialised: a
    previous incarnation with the same id is fenced off and its open transaction aborted.
    """
    producer = KafkaProducer(
        **common_client_config(config),
        acks="all",
        enable_idempotence=True,
        linger_ms=config.producer_linger_ms,
        retries=5,
        transactional_id=transactional_id,
    )
    if transactional_id is not None:
        producer.init_transactions()
    return producer


@contextmanager
def _admin(config: KafkaConfig) -> Iterator[KafkaAdminClient]:
    try:
        admin = KafkaAdminClient(**common_client_config(config), request_timeout_ms=10000)
    except KafkaError as exc:
        raise BrokerUnavailable(f"cannot reach Kafka at {config.bootstrap_servers}: {exc}") from exc
    try:
        yield admin
    finally:
        admin.close()


def partition_counts(config: KafkaConfig, topics: Iterable[str]) -> dict[str, int]:
    """The number of partitions of each of `topics` that exists; missing topics are left out."""
    wanted = list(dict.fromkeys(topics))
    if not wanted:
        return {}
    with _admin(config) as admin:
        described = admin.describe_topics(wanted)
    counts: dict[str, int] = {}
    for topic in described:
        error = kafka_errors.for_code(topic["error_code"])
        if error is kafka_errors.UnknownTopicOrPartitionError:
            continue
        if error is not kafka_errors.NoError:
            # Typically TOPIC_AUTHORIZATION_FAILED: an ACL problem, not a broker outage.
            raise TopicLayoutError(f"cannot describe topic {topic['name']!r}: {error.__name__}")
        counts[topic["name"]] = len(topic["partitions"])
    return counts


def ensure_topics(
    config: KafkaConfig,
    topics: Iterable[str],
    *,
    compacted: Iterable[str] = (),
    partitions: Mapping[str, int] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet and return the names created.

    `compacted` ones get cleanup.policy=compact; a topic named in `partitions` gets that many
    partitions, any other `config.topic_partitions`.
    """
    compacted = set(compacted)
    sizes = dict(partitions or {})
    with _admin(config) as admin:
        existing = set(admin.list_topics())
        missing = [t for t in dict.fromkeys(topics) if t not in existing]
        if missing:
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            t, sizes.get(t, config.topic_partitions), 1,
                            topic_configs={"cleanup.policy": "compact"} if t in compacted else None,
                        )
                        for t in missing
                    ],
                    timeout_ms=10000,
                )
            except TopicAlreadyExistsError:
                pass  # another instance won the race
            log.info(
                "created topics %s",
                ", ".join(f"{t} ({sizes.get(t, config.topic_partitions)} partitions)" for t in missing),
            )
        return missing


def publish(
    producer: KafkaProducer,
    messages: Sequence[OutgoingMessage],
    *,
    wait: bool = True,
    timeout: float = 30.0,
) -> None:
    """Send `messages`; with `wait`, block until the broker acknowledged every one, else raise
    `DeliveryError`. Without (inside a transaction), the transaction's commit is the check."""
    if not messages:
        return
    futures = [
        producer.send(m.topic, key=m.key, value=m.value, headers=m.headers, partition=m.partition)
        for m in messages
    ]
    if not wait:
        return
    try:
        producer.flush(timeout=timeout)
    except KafkaError as exc:  # kafka-python 3 raises KafkaTimeoutError here: still unacknowledged
        raise DeliveryError(f"{len(futures)} messages not acknowledged within {timeout:g} s: {exc!r}") from exc
    failed = [f.exception for f in futures if not f.succeeded()]
    if failed:
        raise DeliveryError(f"{len(failed)} of {len(futures)} messages not acknowledged: {failed[0]!r}")


def as_commit_offsets(offsets: dict[tuple[str, int], int]) -> dict[TopicPartition, OffsetAndMetadata]:
    return {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()}


def commit_offsets(consumer: KafkaConsumer, offsets: dict[tuple[str, int], int]) -> None:
    """Commit next-offsets per (topic, partition), synchronously."""
    if offsets:
        consumer.commit(as_commit_offsets(offsets))


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


def close_producer(producer: KafkaProducer, timeout: float) -> None:
    """`producer.close`, which in kafka-python 3.0 flushes first and raises KafkaTimeoutError
    when the broker is away, before force-closing; its `__del__` then retries and prints a
    traceback at exit. Finish the close it started instead."""
    try:
        producer.close(timeout=timeout)
    except KafkaError:
        sender = getattr(producer, "_sender", None)
        if sender is not None and sender.is_alive():
            sender.force_close()
        producer._closed = True  # type: ignore[attr-defined]  # so __del__ does not flush again
