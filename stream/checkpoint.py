"""Checkpoints: changed machine state to the compacted changelog, and back on assignment.

The changelog is partitioned like the input: the state of a machine whose readings arrive on
input partition p lives in changelog partition p, keyed by machine id. A checkpoint writes every
machine changed since the last one; compaction keeps the newest record per machine. When
partition p is assigned to an instance, it reads changelog partition p from the start to its end
offset (read_committed, so aborted transactions never restore) before any reading of p is scored.

So the changelog needs at least as many partitions as the largest input topic (`ensure_changelog`
at start; `restore` again for partitions added to an input while running). Records are always
written to an explicit partition, never by key hash, so adding changelog partitions is safe:
existing state stays where it is. With several input topics, partition p of every one of them
shares changelog partition p; `anomstream.stream.assignor` keeps those on one instance.

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
from anomstream.stream.config import Config, KafkaConfig
from anomstream.stream.errors import BrokerUnavailable, TopicLayoutError
from anomstream.stream.kafka_io import ensure_topics, partition_counts, publish
from anomstream.stream.metrics import Metrics

__all__ = ["Checkpointer", "changelog_reader", "ensure_changelog"]

log = logging.getLogger(__name__)

# kafka-python refuses a record over max_request_size (1 MiB by default) and Apache Kafka over
# message.max.bytes (1 MB + 12): stay under both, with room for key and record overhead.
MAX_STATE_BYTES = 1_000_000
# A restore that reads nothing for this long has lost its broker.
RESTORE_STALL_SECONDS = 30.0


def _reached(reader: KafkaConsumer, tp: TopicPartition, end: int) -> bool:
    position = reader.position(tp, timeout_ms=5000)  # None when the broker did not answer
    return position is not None and position >= end


def _machine_key(key: bytes | None) -> str | None:
    """A changelog key as a machine id; None for one anomstream never writes (anyone who can
    write to the topic can write anything: such a record is skipped, its state never loaded)."""
    if not key:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        log.warning("changelog record with a non-UTF-8 key skipped")
        return None


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
        self.bootstrap = _first_server(config.kafka)
        self.interval = config.state.checkpoint_interval_seconds
        self.max_readings = config.state.checkpoint_readings
        self.store = store
        self.producer = producer
        self.metrics = metrics
        self.reader_factory = reader_factory
        self.clock = clock
        self._last = clock()
        self._readings = 0
        self._warned_too_large: set[str] = set()

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
            if len(data) <= MAX_STATE_BYTES or self._too_large(machine, len(data))
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

    def _too_large(self, machine: str, size: int) -> bool:
        """A state Kafka would refuse must not stop every checkpoint (and the service with it):
        that machine's newest state is not made durable, and says so once."""
        self.metrics.state_too_large.inc()
        if machine not in self._warned_too_large:
            self._warned_too_large.add(machine)
            log.warning(
                "state of machine %r is %d bytes, over the %d a changelog record may hold: not "
                "checkpointed (a restart restores its last smaller checkpoint); lower "
                "detector.max_sensors_per_machine or use a lighter detector for it",
                machine[:64], size, MAX_STATE_BYTES,
            )
        return False

    def restore(self, partitions: Iterable[int]) -> int:
        """Load the newest state of every machine in changelog `partitions` into the store."""
        wanted = sorted(set(partitions))
        if not wanted:
            return 0
        started = time.perf_counter()
        reader = self.reader_factory()
        try:
            self._check_room(reader, wanted)
            tps = [TopicPartition(self.topic, p) for p in wanted]
            reader.assign(tps)
            reader.seek_to_beginning(*tps)
            end = reader.end_offsets(tps)
            latest: dict[str, tuple[int, bytes]] = {}
            count = 0
            # Read to the end offset AND until a poll comes back empty: some brokers (Tansu 0.6)
            # report the end offset as the last batch's base offset + 1, i.e. too early. A broker
            # lost mid-restore must not hang the assignment (and the service) for ever.
            stalled_since = time.monotonic()
            while True:
                polled = reader.poll(timeout_ms=200)
                for tp, batch in polled.items():
                    for record in batch:
                        machine = _machine_key(record.key)
                        if machine is None or record.value is None:
                            continue
                        latest[machine] = (tp.partition, record.value)
                        count += 1
                if polled:
                    stalled_since = time.monotonic()
                elif all(_reached(reader, tp, end[tp]) for tp in tps):
                    break
                elif time.monotonic() - stalled_since > RESTORE_STALL_SECONDS:
                    raise BrokerUnavailable(
                        f"restoring changelog {self.topic!r} partitions {wanted} made no progress "
                        f"for {RESTORE_STALL_SECONDS:.0f} s"
                    )
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


    def _check_room(self, reader: KafkaConsumer, wanted: list[int]) -> None:
        """Stop with the fix, not a KeyError, when an input partition has no changelog partition
        (partitions added to an input topic while running)."""
        have = len(reader.partitions_for_topic(self.topic))
        if not have:
            # No metadata (yet): a changelog created moments ago on a multi-broker cluster.
            log.warning("no partition metadata for changelog topic %s: not checked", self.topic)
            return
        if wanted[-1] >= have:
            beyond = ", ".join(str(p) for p in wanted if p >= have)
            raise _too_few_partitions(
                self.topic, have, wanted[-1] + 1, f"input partition {beyond} was assigned",
                self.bootstrap,
            )


def ensure_changelog(config: Config) -> int:
    """Make sure the changelog exists with a partition for every input partition; return its
    partition count.

    Missing, it is created (compacted) with as many partitions as the largest input topic when
    `kafka.create_topics` is true; with false anomstream creates no topic at all (operators
    who manage topics themselves), so a missing changelog stops with the command to create it.
    An existing changelog with too few partitions always stops, with the command to grow it:
    anomstream never changes an existing topic by itself.
    """
    kafka, topic = config.kafka, config.state.changelog_topic
    counts = partition_counts(kafka, [*kafka.input_topics, topic])
    inputs = {t: counts[t] for t in kafka.input_topics if t in counts}
    for absent in (t for t in kafka.input_topics if t not in counts):
        # Checked again at assignment (`Checkpointer.restore`), once it exists.
        log.warning("input topic %s does not exist yet: changelog not checked against it", absent)
    largest = max(inputs, key=inputs.__getitem__, default=None)
    needed = inputs[largest] if largest is not None else kafka.topic_partitions
    if topic not in counts:
        if not kafka.create_topics:
            raise TopicLayoutError(
                f"changelog topic {topic!r} does not exist and kafka.create_topics is false. "
                f"Fix: kafka-topics.sh --bootstrap-server {_first_server(kafka)} --create "
                f"--topic {topic} --partitions {needed} --config cleanup.policy=compact "
                "(partitions: at least those of the largest input topic)"
            )
        ensure_topics(kafka, [topic], compacted=[topic], partitions={topic: needed})
        # Re-read rather than assume: another instance may have won the creation race.
        counts[topic] = partition_counts(kafka, [topic]).get(topic, needed)
    have = counts[topic]
    if largest is not None and have < needed:
        raise _too_few_partitions(
            topic, have, needed, f"input topic {largest!r} has {needed}", _first_server(kafka)
        )
    return have


def _too_few_partitions(
    changelog: str, have: int, needed: int, why: str, bootstrap: str
) -> TopicLayoutError:
    """The one-line error, with the fix, for a changelog smaller than the input."""
    return TopicLayoutError(
        f"changelog topic {changelog!r} has {have} partitions but {why}; the state of input "
        f"partition p lives in changelog partition p. Fix: add partitions (safe: existing state "
        f"stays where it is): kafka-topics.sh --bootstrap-server {bootstrap} --alter "
        f"--topic {changelog} --partitions {needed}"
    )


def _first_server(config: KafkaConfig) -> str:
    return config.bootstrap_servers.split(",")[0]


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
