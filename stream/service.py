"""The processing loop: poll → pipeline → publish → checkpoint → commit.

Commit discipline (at-least-once, see README "Delivery guarantee"): the offsets of a batch are
committed only after (1) every alert and dead letter produced from it was acknowledged and (2)
with state enabled, a checkpoint that includes its readings was acknowledged. Offsets therefore
advance at checkpoints (every `state.checkpoint_interval_seconds` / `checkpoint_readings`) and at
shutdown; at partition revocation the state is checkpointed (see `on_revoked`). If the broker does not acknowledge, the loop stops with
`DeliveryError` without committing; after a restart the uncommitted tail is processed again from
the restored state, which reproduces the same alerts with the same ids.

Exactly-once mode (`state.exactly_once`): alerts, dead letters, changelog records and the
consumed offsets go into one Kafka transaction per checkpoint; a crash aborts it, so a
read_committed consumer of the alert topic never sees an alert twice.

A stop request (SIGTERM/SIGINT) is honoured between batches: finish, checkpoint, commit, leave.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.subscription_state import ConsumerRebalanceListener

from anomstream.stream.checkpoint import Checkpointer
from anomstream.stream.config import Config
from anomstream.stream.http import Health
from anomstream.stream.kafka_io import as_commit_offsets, commit_offsets, partition_lag, publish
from anomstream.stream.metrics import Metrics
from anomstream.stream.pipeline import BatchOutput, Pipeline

__all__ = ["Service"]

log = logging.getLogger(__name__)

LAG_INTERVAL = 2.0  # seconds between consumer-lag refreshes (each asks the client per partition)


class _Rebalance(ConsumerRebalanceListener):
    """Forwards rebalance callbacks to the service.

    kafka-python logs and swallows exceptions raised in these callbacks; a failed checkpoint at
    revocation must not be forgotten (later commits would skip its state), so the error is kept
    and re-raised by the loop right after `poll` returns.
    """

    def __init__(self, service: Service) -> None:
        self.service = service

    def on_partitions_revoked(self, revoked: Any) -> None:
        log.info("partitions revoked: %s", sorted(f"{tp.topic}-{tp.partition}" for tp in revoked))
        self._guard(self.service.on_revoked, revoked)

    def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("partitions assigned: %s", sorted(f"{tp.topic}-{tp.partition}" for tp in assigned))
        self._guard(self.service.on_assigned, assigned)

    def _guard(self, callback: Callable[[Any], None], partitions: Any) -> None:
        try:
            callback(partitions)
        except BaseException as exc:
            log.exception("rebalance callback failed; stopping after this poll")
            self.service.fatal = exc
            raise


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
        checkpointer: Checkpointer | None = None,
        on_output: Callable[[BatchOutput], None] | None = None,
    ) -> None:
        self.config = config
        self.producer = producer
        self.pipeline = pipeline
        self.metrics = metrics
        self.health = health
        self.checkpointer = checkpointer
        self.on_output = on_output
        self.transactional = config.state.exactly_once
        self._in_transaction = False
        self._pending: dict[tuple[str, int], int] = {}  # offsets processed, not yet committed
        self._owned: set[int] = set()  # input partition numbers this instance holds state for
        self._restoring = False
        self.fatal: BaseException | None = None  # raised in a rebalance callback
        self._last_contact = 0.0
        self._next_lag = 0.0
        self.consumer = consumer_factory(_Rebalance(self))

    # ------------------------------------------------------------------ the loop

    def run(self, stop: threading.Event) -> None:
        kafka = self.config.kafka
        try:
            while not stop.is_set():
                self.health.beat()
                polled = self.consumer.poll(timeout_ms=kafka.poll_timeout_ms, max_records=kafka.max_poll_records)
                if self.fatal is not None:
                    raise self.fatal
                records = [r for batch in polled.values() for r in batch]
                if records:
                    self.process(records)
                elif self._pending and (self.checkpointer is None or self.checkpointer.due()):
                    self.checkpoint()
                self._refresh_status()
            self.checkpoint()  # the last batch's state and offsets, before leaving the group
        finally:
            self.close()

    def process(self, records: list[Any]) -> BatchOutput:
        out = self.pipeline.process(records)
        self._begin()
        try:
            publish(self.producer, out.dead_letters + out.alerts, wait=not self.transactional)
        except Exception:
            self.metrics.delivery_failures.labels("alert_or_dlq").inc()
            raise
        self._pending.update(out.offsets)
        if self.checkpointer is None:
            self.checkpoint()
        else:
            self.checkpointer.note(len(records))
            if self.checkpointer.due():
                self.checkpoint()
        if self.on_output is not None:
            self.on_output(out)
        return out

    def checkpoint(self, *, commit: bool = True) -> None:
        """Make processed state durable, then (with `commit`) commit the offsets it covers."""
        if self.checkpointer is not None:
            self._begin()
            self.checkpointer.write(wait=not self.transactional)
        if not commit:
            if self._in_transaction:
                self.producer.commit_transaction()
                self._in_transaction = False
            self._pending.clear()  # replays of these are skipped: the state records its offsets
            return
        if self.transactional:
            if self._in_transaction:
                if self._pending:
                    self.producer.send_offsets_to_transaction(
                        as_commit_offsets(self._pending), self.consumer.group_metadata()
                    )
                self.producer.commit_transaction()
                self._in_transaction = False
        elif self._pending:
            commit_offsets(self.consumer, self._pending)
        if self._pending:
            self._pending.clear()
            self._last_contact = time.monotonic()
            self.metrics.commits.inc()
            self.metrics.last_commit_timestamp.set(time.time())

    def _begin(self) -> None:
        if self.transactional and not self._in_transaction:
            self.producer.begin_transaction()
            self._in_transaction = True

    # ------------------------------------------------------------------ rebalancing

    def on_revoked(self, revoked: Any) -> None:
        # Eager rebalancing revokes everything: make all state durable before any partition is
        # handed to another instance. Offsets are not committed here: kafka-python 3 runs this
        # callback on its IO thread, where a blocking commit is refused. The next owner restores
        # state that records each machine's last offset and skips the readings it replays, so
        # nothing is lost, learned twice or alerted twice; it only re-reads them.
        if self.checkpointer is not None:
            self.checkpoint(commit=False)
        for tp in revoked:
            try:
                self.metrics.consumer_lag.remove(tp.topic, str(tp.partition))
            except KeyError:
                pass

    def on_assigned(self, assigned: Any) -> None:
        self._last_contact = time.monotonic()
        now_owned = {tp.partition for tp in assigned}
        lost, gained = self._owned - now_owned, now_owned - self._owned
        self._owned = now_owned
        if lost:
            dropped = self.pipeline.release(lost)
            log.info("released state of partitions %s (%d live machines)", sorted(lost), dropped)
        if gained and self.checkpointer is not None:
            self._restoring = True
            self.metrics.restoring.set(1)
            self.health.set_ready(False, "restoring state", partitions=sorted(gained))
            try:
                self.checkpointer.restore(gained)
            finally:
                self._restoring = False
                self.metrics.restoring.set(0)

    # ------------------------------------------------------------------ status

    def _refresh_status(self) -> None:
        now = time.monotonic()
        assignment = self.consumer.assignment()
        self.metrics.partitions_assigned.set(len(assignment))
        reachable = self._broker_reachable(now)
        ready = bool(assignment) and reachable and not self._restoring
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
        return min(heartbeat_ago, now - self._last_contact) <= window

    def close(self) -> None:
        self.health.set_ready(False, "stopping")
        self.metrics.ready.set(0)
        try:
            if self._in_transaction:  # only after a failure: a clean stop has committed
                self.producer.abort_transaction()
            self.producer.flush(timeout=10)
        finally:
            # autocommit=False: offsets were committed at checkpoints, after acknowledgement.
            self.consumer.close(autocommit=False)
            self.producer.close(timeout=10)
