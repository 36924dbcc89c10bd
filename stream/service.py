"""The processing loop: poll → pipeline → publish and await acks → commit. At-least-once.

Offsets of a batch are committed only after every alert and dead letter produced from it has
been acknowledged (acks=all). If the broker does not acknowledge, the loop stops with
`DeliveryError` *without* committing, and the records are processed again after a restart
(alert ids are deterministic, so consumers can de-duplicate). A stop request (SIGTERM/SIGINT)
is honoured between batches: the current batch is finished, published and committed first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.subscription_state import ConsumerRebalanceListener

from stream.config import Config
from stream.http import Health
from stream.kafka_io import commit_offsets, partition_lag, publish
from stream.metrics import Metrics
from stream.pipeline import BatchOutput, Pipeline

__all__ = ["Service"]

log = logging.getLogger(__name__)

LAG_INTERVAL = 2.0  # seconds between consumer-lag refreshes (each asks the client per partition)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, service: Service) -> None:
        self.service = service

    def on_partitions_revoked(self, revoked: Any) -> None:
        # Every batch is committed before the next poll, so nothing is pending here.
        log.info("partitions revoked: %s", sorted(f"{tp.topic}-{tp.partition}" for tp in revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("partitions assigned: %s", sorted(f"{tp.topic}-{tp.partition}" for tp in assigned))
        self.service.assigned_at = time.monotonic()


class Service:
    """Runs `pipeline` between a consumer and a producer until `stop` is set."""

    def __init__(
        self,
        config: Config,
        *,
        consumer_factory: Callable[[Any], KafkaConsumer],
        producer: KafkaProducer,
        pipeline: Pipeline,
        metrics: Metrics,
        health: Health,
        on_output: Callable[[BatchOutput], None] | None = None,
    ) -> None:
        self.config = config
        self.consumer = consumer_factory(_Rebalance(self))
        self.producer = producer
        self.pipeline = pipeline
        self.metrics = metrics
        self.health = health
        self.on_output = on_output
        self.assigned_at = 0.0
        self._last_contact = 0.0
        self._next_lag = 0.0

    def run(self, stop: threading.Event) -> None:
        kafka = self.config.kafka
        try:
            while not stop.is_set():
                self.health.beat()
                polled = self.consumer.poll(timeout_ms=kafka.poll_timeout_ms, max_records=kafka.max_poll_records)
                records = [r for batch in polled.values() for r in batch]
                if records:
                    self.process(records)
                self._refresh_status()
        finally:
            self.close()

    def process(self, records: list[Any]) -> BatchOutput:
        out = self.pipeline.process(records)
        try:
            publish(self.producer, out.dead_letters + out.alerts)
        except Exception:
            self.metrics.delivery_failures.labels("alert_or_dlq").inc()
            raise
        commit_offsets(self.consumer, out.offsets)
        self._last_contact = time.monotonic()
        self.metrics.commits.inc()
        self.metrics.last_commit_timestamp.set(time.time())
        if self.on_output is not None:
            self.on_output(out)
        return out

    def _refresh_status(self) -> None:
        now = time.monotonic()
        assignment = self.consumer.assignment()
        self.metrics.partitions_assigned.set(len(assignment))
        reachable = self._broker_reachable(now)
        ready = bool(assignment) and reachable
        reason = "" if ready else ("broker unreachable" if not reachable else "no partitions assigned")
        self.health.set_ready(ready, reason, partitions=len(assignment))
        self.metrics.ready.set(1 if ready else 0)
        if now >= self._next_lag:
            self._next_lag = now + LAG_INTERVAL
            for tp, lag in partition_lag(self.consumer).items():
                self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)

    def _broker_reachable(self, now: float) -> bool:
        """Heard from the group coordinator within a session timeout."""
        window = self.config.kafka.session_timeout_ms / 1000.0
        coordinator = self.consumer.metrics().get("consumer-coordinator-metrics", {})
        heartbeat_ago = coordinator.get("last-heartbeat-seconds-ago", float("inf"))
        contact_ago = now - max(self._last_contact, self.assigned_at)
        return min(heartbeat_ago, contact_ago) <= window

    def close(self) -> None:
        self.health.set_ready(False, "stopping")
        self.metrics.ready.set(0)
        try:
            self.producer.flush(timeout=10)
        finally:
            # autocommit=False: offsets were committed batch by batch, after acknowledgement.
            self.consumer.close(autocommit=False)
            self.producer.close(timeout=10)
