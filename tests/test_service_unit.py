"""The service loop's assignment path with in-memory fakes: readiness while restoring."""

from __future__ import annotations

from typing import Any

from kafka import TopicPartition
from kafka_helpers import TEST_SIGNING_KEY
from prometheus_client import CollectorRegistry

from anomstream.stream.config import load_config
from anomstream.stream.http import Health
from anomstream.stream.metrics import Metrics
from anomstream.stream.pipeline import Pipeline
from anomstream.stream.service import Service


class _Consumer:
    def __init__(self, listener: Any) -> None:
        self.listener = listener

    def assignment(self) -> set[TopicPartition]:
        return set()


class _Checkpointer:
    def __init__(self, health: Health, registry: CollectorRegistry) -> None:
        self.health, self.registry = health, registry
        self.seen: list[tuple[list[int], bool, float | None]] = []

    def restore(self, partitions: Any) -> int:
        ready, _ = self.health.readiness()
        self.seen.append((sorted(partitions), ready, self.registry.get_sample_value("anomstream_restoring")))
        return 0


def test_not_ready_while_restoring_newly_assigned_partitions_only() -> None:
    config = load_config(environ={}, overrides={"state.signing_key": TEST_SIGNING_KEY})
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    health = Health()
    health.set_ready(True)
    checkpointer = _Checkpointer(health, registry)
    service = Service(
        config, consumer_factory=_Consumer, producer=None, pipeline=Pipeline(config, metrics=metrics),  # type: ignore[arg-type]
        metrics=metrics, health=health, checkpointer=checkpointer,  # type: ignore[arg-type]
    )
    t = config.kafka.input_topics[0]
    feedback = config.feedback.topic  # a side topic's partitions own no state: never restored
    service.on_assigned({TopicPartition(t, 0), TopicPartition(t, 1), TopicPartition(feedback, 5)})
    service.on_assigned({TopicPartition(t, 1), TopicPartition(t, 2)})  # keeps 1, gains 2
    assert checkpointer.seen == [([0, 1], False, 1.0), ([2], False, 1.0)]
    assert registry.get_sample_value("anomstream_restoring") == 0
