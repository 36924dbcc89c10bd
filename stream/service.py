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

Broker outages (README "Broker outages"): while the broker is away, kafka-python keeps
reconnecting and `poll` returns nothing, so an idle loop rides through; `/readyz` turns 503 and
`anomstream_broker_connected` 0 within a second (`ReadinessMonitor`, its own thread: the loop may
be blocked in a wait). A publish, checkpoint or commit that the broker cannot acknowledge within
its timeout (30 s) ends the run with `BrokerUnavailable` (exit code 69), one log line, nothing
committed; the supervisor restarts the process, whose start-up waits for the broker, and the
uncommitted tail is processed again from the restored state (same alerts, same ids).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError

from anomstream.stream.checkpoint import Checkpointer
from anomstream.stream.config import Config
from anomstream.stream.errors import BrokerUnavailable, DeliveryError
from anomstream.stream.http import Health
from anomstream.stream.kafka_io import (
    as_commit_offsets,
    close_producer,
    commit_offsets,
    partition_lag,
    publish,
)
from anomstream.stream.metrics import Metrics
from anomstream.stream.pipeline import BatchOutput, Pipeline
from anomstream.stream.readiness import ReadinessMonitor, consumer_connected

__all__ = ["Service"]

log = logging.getLogger(__name__)

LAG_INTERVAL = 2.0  # seconds between consumer-lag refreshes (each asks the client per partition)
# Closing after a failure: the broker is likely away, so do not wait long for it (nothing
# unacknowledged is committed anyway; what the producer still holds is produced again on replay).
FAILED_CLOSE_SECONDS = 2.0


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
            if isinstance(exc, (DeliveryError, KafkaError)):  # the broker went away: no traceback
                log.error("rebalance callback failed (%s: %s); stopping after this poll",
                          type(exc).__name__, exc)
            else:
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
        self._failed = False  # the run is ending on an error: its last work must not become durable
        self.fatal: BaseException | None = None  # raised in a rebalance callback
        self._next_lag = 0.0
        self.consumer = consumer_factory(_Rebalance(self))
        self.readiness = ReadinessMonitor(
            health=health, metrics=metrics,
            connected=lambda: consumer_connected(self.consumer),
            state=lambda: (len(self._input_assignment()), self._restoring),
        )

    # ------------------------------------------------------------------ the loop

    def run(self, stop: threading.Event) -> None:
        kafka = self.config.kafka
        self.readiness.start()
        try:
            while not stop.is_set():
                self.health.beat()
                polled = self.consumer.poll(timeout_ms=kafka.poll_timeout_ms, max_records=kafka.max_poll_records)
                if self.fatal is not None:
                    raise self.fatal
                records = [r for batch in polled.values() for r in batch]
                if records:
                    self.process(records)
                elif self.pipeline.timer_due():
                    # Silent machines send nothing: the timer's alerts go out, are checkpointed
                    # and committed exactly like a batch's.
                    self.process([])
                elif self._pending and (self.checkpointer is None or self.checkpointer.due()):
                    self.checkpoint()
                self._refresh_status()
            if not self.readiness.connected:
                # Stopping while the broker is away: the final checkpoint would only wait out
                # its timeout. Leave now; the uncommitted tail is processed again after a start.
                raise BrokerUnavailable(
                    f"stop requested while the broker has been unreachable for "
                    f"{self.readiness.outage_seconds():.0f} s; offsets after the last commit "
                    f"were not committed and are processed again after a restart"
                )
            self.checkpoint()  # the last batch's state and offsets, before leaving the group
        except BrokerUnavailable as exc:
            self._failed = True
            log.error("%s", exc)
            raise
        except (DeliveryError, KafkaError) as exc:
            self._failed = True
            raise self._unavailable(exc) from exc
        except BaseException:
            self._failed = True
            raise
        finally:
            self.readiness.stop()
            self.close()

    def _unavailable(self, exc: BaseException) -> BrokerUnavailable:
        """What ends a run that Kafka could not complete: an expected outage, not a bug.

        Any kafka-python error escaping the loop (commit timeout, lost group membership) and any
        unacknowledged output end the run the same way: nothing after the last commit was
        committed, so a restarted process replays it; no traceback, one line for the log.
        """
        away = self.readiness.outage_seconds()
        where = f"broker unreachable for {away:.0f} s" if away else "broker did not acknowledge"
        message = (
            f"Kafka did not complete the work ({where}): {type(exc).__name__}: {exc}; "
            "offsets after the last commit were not committed and are processed again after a "
            "restart"
        )
        log.error("%s", message)
        return BrokerUnavailable(message)

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
        # After a failure (consumer.close() revokes too) the state in memory may include readings
        # whose alerts were never acknowledged: making it durable would skip them on replay.
        if self.checkpointer is not None and not self._failed:
            self.checkpoint(commit=False)
        for tp in revoked:
            try:
                self.metrics.consumer_lag.remove(tp.topic, str(tp.partition))
            except KeyError:
                pass

    def on_assigned(self, assigned: Any) -> None:
        # State is owned per input partition number; the feedback and control topics' partitions
        # come along with them (co-partitioned) but own nothing themselves.
        inputs = set(self.config.kafka.input_topics)
        now_owned = {tp.partition for tp in assigned if tp.topic in inputs}
        lost, gained = self._owned - now_owned, now_owned - self._owned
        self._owned = now_owned
        # A gained partition's machines are not silent for the time nobody held them.
        self.pipeline.presence.hold(gained, self.pipeline.clock())
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
                if self.readiness.running:
                    self.readiness.refresh()

    # ------------------------------------------------------------------ status

    def _refresh_status(self) -> None:
        """Readiness, partition and lag gauges. `self.readiness` also refreshes on its own, so
        readiness follows the broker while this loop waits in a blocking call."""
        now = time.monotonic()
        self.readiness.refresh()  # at once, rather than at the monitor's next look
        self.metrics.partitions_assigned.set(len(self._input_assignment()))
        if now >= self._next_lag:
            self._next_lag = now + LAG_INTERVAL
            for tp, lag in partition_lag(self.consumer).items():
                self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)

    def _input_assignment(self) -> list[Any]:
        """The assigned partitions of the input topics (not of the feedback or control topics)."""
        inputs = self.config.kafka.input_topics
        return [tp for tp in self.consumer.assignment() if tp.topic in inputs]

    def close(self) -> None:
        """Leave the group and close the clients; after a failure without waiting long on a
        broker that is probably away."""
        self.health.set_ready(False, "stopping")
        self.metrics.ready.set(0)
        wait = FAILED_CLOSE_SECONDS if self._failed else 10.0
        try:
            if self._in_transaction:  # only after a failure: a clean stop has committed
                self.producer.abort_transaction()
            self.producer.flush(timeout=wait)
        except KafkaError as exc:  # an abort or flush the absent broker cannot answer
            log.warning("output not acknowledged at close (produced again on replay): %s", exc)
        finally:
            # autocommit=False: offsets were committed at checkpoints, after acknowledgement.
            try:
                self.consumer.close(autocommit=False, timeout_ms=int(wait * 1000))
            finally:
                close_producer(self.producer, wait)

