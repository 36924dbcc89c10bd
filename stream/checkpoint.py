"""Checkpoints: changed machine state to the compacted changelog, and back on assignment.

The changelog is partitioned like the input: the state of a machine whose readings arrive on
input partition p lives in changelog partition p, keyed by machine id. A checkpoint writes every
machine changed since the last one; compaction keeps the newest record per machine. When
partition p is assigned to an instance, it reads changelog partition p from the start to its end
offset (read_committed, so aborted transactions never restore) before any reading of p is scored.

Each machine's state records the input offset of the last reading it includes, so after a crash
the readings the checkpoint already covers are skipped on replay (see `Pipeline`): state is
never learned twice, and alerts of the uncovered tail are reproduced with the same ids.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from anomstream.detectors.entities import ModelStore
from anomstream.stream.alerts import OutgoingMessage
from anomstream.stream.config import Config
from anomstream.stream.kafka_io import publish
from anomstream.stream.metrics import Metrics

__all__ = ["Checkpointer"]

log = logging.getLogger(__name__)


class Checkpointer:
    """Decides when to checkpoint, writes checkpoints, restores partitions."""

    def __init__(
        self,
        config: Config,
        *,
        store: ModelStore,
        producer: KafkaProducer,
        metrics: Metrics,
        reader_factory: Callable[[], KafkaConsumer],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.topic = config.state.changelog_topic
        self.interval = config.state.checkpoint_interval_seconds
        self.max_readings = config.state.checkpoint_readings
        self.store = store
        self.producer = producer
        self.metrics = metrics
        self.reader_factory = reader_factory
        self.clock = clock
        self._last = clock()
        self._readings = 0

    def note(self, readings: int) -> None:
        self._readings += readings

    def due(self) -> bool:
        return self._readings >= self.max_readings or self.clock() - self._last >= self.interval

    def write(self, partitions: Iterable[int] | None = None, *, wait: bool = True) -> int:
        """Send the changed machines' state; with `wait`, block until acknowledged."""
        started = time.perf_counter()
        changes = self.store.take_changes(partitions)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("checkpoint: %s", ", ".join(f"{m}@p{p}" for m, p, _ in changes))
        messages = [
            OutgoingMessage(self.topic, machine.encode("utf-8"), data, [], partition)
            for machine, partition, data in changes
        ]
        try:
            # Inside a transaction (wait=False) the transaction's commit makes them durable.
            publish(self.producer, messages, wait=wait)
        except Exception:
            self.metrics.delivery_failures.labels("checkpoint").inc()
            raise
        self._last = self.clock()
        self._readings = 0
        m = self.metrics
        m.checkpoints.inc()
        m.checkpoint_records.inc(len(messages))
        m.checkpoint_bytes.inc(sum(len(msg.value) for msg in messages))
        m.checkpoint_duration.observe(time.perf_counter() - started)
        m.last_checkpoint_timestamp.set(time.time())
        return len(messages)

    def restore(self, partitions: Iterable[int]) -> int:
        """Load the newest state of every machine in changelog `partitions` into the store."""
        wanted = sorted(set(partitions))
        if not wanted:
            return 0
        started = time.perf_counter()
        reader = self.reader_factory()
        try:
            tps = [TopicPartition(self.topic, p) for p in wanted]
            reader.assign(tps)
            reader.seek_to_beginning(*tps)
            end = reader.end_offsets(tps)
            latest: dict[str, tuple[int, bytes]] = {}
            count = 0
            # Read to the end offset AND until a poll comes back empty: some brokers (Tansu 0.6)
            # report the end offset as the last batch's base offset + 1, i.e. too early.
            while True:
                polled = reader.poll(timeout_ms=200)
                for tp, batch in polled.items():
                    for record in batch:
                        if record.key is None or record.value is None:
                            continue
                        latest[record.key.decode("utf-8")] = (tp.partition, record.value)
                        count += 1
                if not polled and all(reader.position(tp) >= end[tp] for tp in tps):
                    break
        finally:
            reader.close()
        for machine, (partition, data) in latest.items():
            self.store.install(machine, partition, data)
        elapsed = time.perf_counter() - started
        self.metrics.restore_records.inc(count)
        self.metrics.restore_duration.observe(elapsed)
        log.info(
            "restored %d machines (%d changelog records) of partitions %s in %.3f s",
            len(latest), count, wanted, elapsed,
        )
        return len(latest)


def changelog_reader(config: Config) -> Callable[[], Any]:
    """A factory of group-less, read_committed consumers for restoring."""
    from anomstream.stream.kafka_io import common_client_config

    def make() -> KafkaConsumer:
        return KafkaConsumer(
            **common_client_config(config.kafka),
            enable_auto_commit=False,
            isolation_level="read_committed",
            max_poll_records=5000,
        )

    return make
