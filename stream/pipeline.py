"""The pure pipeline: a batch of consumed records in; alerts, dead letters and offsets out.

No Kafka here: records are anything with the attributes of kafka-python's `ConsumerRecord`
(`topic, partition, offset, timestamp, key, value, headers`), and the output is a `BatchOutput`
for the I/O layer to publish and commit. The clock and the metrics are passed in, so the same
code runs in unit tests, on Tansu and on Apache Kafka.

Per reading: decode → the machine's mode (`detectors/modes.py`: maintenance or a paused mode
skips the models) → sensor health (`detectors/sensor_health.py`: broken sensors raise their own
kinds and are kept out of the models) → every model scores, then learns (`stream/scoring.py`)
→ the machine's alert policy decides from all of their scores → presence (the usual interval)
→ every transition goes out through one `AlertEmitter` (`stream/alert_emitter.py`). Records of
the feedback and control topics go to their handlers (`stream/feedback.py`, `control.py`); a
timer raises `silent` alerts (`process([])` when no record came). Per-reading metric values are
collected in arrays and handed to the metrics once per batch.

No record stops the service: an invalid one becomes a dead letter with the decoder's reason; a
valid one whose processing raises (a bug in a detector, the policy, alert building) becomes a
dead letter with reason `internal_error` and the exception type and place in the detail header,
is counted in `anomstream_internal_errors_total{type}` and logged with its traceback once per
kind. The batch's other records are unaffected.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from anomstream.detectors.entities import MachineState, ModelStore
from anomstream.detectors.modes import Modes
from anomstream.detectors.policy import AlertPolicy, Transition
from anomstream.detectors.presence import Presence
from anomstream.detectors.sensor_health import SensorHealth
from anomstream.stream.alert_emitter import AlertEmitter
from anomstream.stream.alerts import AlertSource, OutgoingMessage
from anomstream.stream.config import Config
from anomstream.stream.control import ControlHandler
from anomstream.stream.errors import InvalidRecord
from anomstream.stream.feedback import FeedbackHandler
from anomstream.stream.metrics import Metrics
from anomstream.stream.scoring import MachineScorer
from anomstream.stream.state_codec import codec_from_config
from anomstream.stream.telemetry import Reading, TelemetryDecoder

__all__ = ["DLQ_REASON_HEADER", "BatchOutput", "Pipeline", "RecordLike"]

DLQ_REASON_HEADER = "anomstream-dlq-reason"
# Seconds between full recounts of `anomstream_machines_in_mode` over the live machines.
MODE_RECOUNT = 30.0
log = logging.getLogger(__name__)


class RecordLike(Protocol):
    topic: str
    partition: int
    offset: int
    timestamp: int  # milliseconds, as Kafka stores it
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] | None


@dataclass
class BatchOutput:
    alerts: list[OutgoingMessage] = field(default_factory=list)
    dead_letters: list[OutgoingMessage] = field(default_factory=list)
    # (topic, partition) -> next offset to consume, i.e. the offset to commit
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    readings: int = 0  # valid readings scored or learned
    skipped: int = 0  # valid readings already included in restored state


class Pipeline:
    """Stateful (models, policy states) but I/O-free; call `process` once per polled batch."""

    def __init__(
        self,
        config: Config,
        *,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        models: ModelStore | None = None,
        on_scored: Callable[[RecordLike, Reading, float], None] | None = None,
    ) -> None:
        self.config = config
        # Called with (record, reading, machine score) once per processed reading (score 0.0
        # in warm-up): how `anomstream replay` gets each row's score from this very code path.
        self.on_scored = on_scored
        self.metrics = metrics
        self.clock = clock
        self.decoder = TelemetryDecoder(config.telemetry)
        self.models = models if models is not None else ModelStore.from_config(
            config.detector, idle_ttl=config.state.idle_ttl_seconds, codec=codec_from_config(config.state)
        )
        self.policy = AlertPolicy.from_config(config.alerts)
        self.alert_emitter = AlertEmitter(
            config, metrics=metrics, models=self.models, threshold=self.policy.threshold
        )
        self.emit = self.alert_emitter.emit  # every alert of every kind goes out through it
        self.models.on_thaw = self.alert_emitter.restored
        self.scorer = MachineScorer(
            self.models, warmup=config.detector.warmup,
            machine_mode=config.detector.entity == "machine",
        )
        self.relearn = self.scorer.relearn  # feedback's undo learns readings again through it
        # The operations features (see their modules): health codes and presence per reading,
        # modes gating every reading, feedback and control from their own topics.
        self.health = SensorHealth.from_config(config.health)
        self.presence = Presence.from_config(config.silence)
        self.modes = Modes.from_config(config.modes)
        self.feedback = FeedbackHandler(self)
        self.control = ControlHandler(self)
        self._side: dict[str, Callable[[RecordLike, BatchOutput, float], None]] = {}
        if config.feedback.enabled:
            self._side[config.feedback.topic] = self.feedback.handle
        if config.modes.enabled:
            self._side[config.modes.control_topic] = self.control.handle
        # Held while a batch is processed: the HTTP thread's drill-down reads state under it.
        self.lock = threading.RLock()
        self._machine_mode = config.detector.entity == "machine"
        self._max_sensors = config.detector.max_sensors_per_machine
        self._sensor_scores: list[float] = []  # this batch's per-sensor scores, for the histogram
        self._errors_seen: set[tuple[str, str]] = set()  # (exception type, where): logged once
        self._modes_counted_at = 0.0  # next full recount of `machines_in_mode` (clock time)

    def process(self, records: Sequence[RecordLike]) -> BatchOutput:
        with self.lock:
            return self._process(records)

    def _process(self, records: Sequence[RecordLike]) -> BatchOutput:
        started = time.perf_counter()
        out = BatchOutput()
        now = self.clock()
        latencies: list[float] = []
        scores: list[float] = []
        consumed: dict[str, int] = {}
        models = self.models
        before = (self.scorer.scored, models.created, models.evicted, models.restored, models.rejected)
        for record in records:
            consumed[record.topic] = consumed.get(record.topic, 0) + 1
            out.offsets[(record.topic, record.partition)] = record.offset + 1
            # One try per record, free on the hot path: an invalid record, or a bug anywhere in
            # scoring, learning, policy or alert building, costs that record (a dead letter),
            # never the batch nor the service.
            try:
                side = self._side.get(record.topic)
                if side is not None:  # feedback or control: not a reading
                    side(record, out, now)
                    continue
                reading = self.decoder.decode(record.key, record.value)
                state = models.machine(reading.machine, record.partition, now)
                if state.covers(record.topic, record.partition, record.offset):
                    out.skipped += 1  # replayed after a crash; its checkpoint already includes it
                    if log.isEnabledFor(logging.DEBUG):
                        log.debug("skip %s p%d@%d (state has %d readings up to %d)", reading.machine,
                                  record.partition, record.offset, state.readings, state.offset)
                    continue
                if len(state.entities) + len(reading.sensors) > self._max_sensors:
                    self._check_sensor_budget(state, reading)  # off the hot path: near the cap
                state.include(record.topic, record.partition, record.offset)
                score = self._reading(state, reading, record, out, scores, now)
            except InvalidRecord as exc:
                out.dead_letters.append(self._dead_letter(record, exc))
                continue
            except Exception as exc:  # noqa: BLE001 - isolated to this record, logged and counted
                out.dead_letters.append(self._dead_letter(record, self._internal_error(exc)))
                continue
            # Counted only once the whole reading succeeded: processed + dead-lettered = consumed.
            out.readings += 1
            latencies.append(now - record.timestamp / 1000.0)
            if self.on_scored is not None:
                self.on_scored(record, reading, score)
        if self.presence.due(now):
            self._check_silence(out, now)
        models.evict_idle(now)
        self._record_metrics(out, consumed, latencies, scores, started, before)
        return out

    def timer_due(self, now: float | None = None) -> bool:
        """True when timer work (silent machines) is due: the service then calls `process([])`
        even when no record arrived."""
        return self.presence.due(self.clock() if now is None else now)

    def _reading(
        self,
        state: MachineState,
        reading: Reading,
        record: RecordLike,
        out: BatchOutput,
        scores: list[float],
        now: float,
    ) -> float:
        """One valid reading through modes, health, models, policy and presence; its alerts go
        to `out`. Returns the machine score (0.0 when no model scored it)."""
        gate = self.modes.gate(reading.machine, state, reading.event_time, reading.sensors)
        transitions: list[Transition] = []
        if gate.previous is not None or now >= self._modes_counted_at:
            self.count_mode_change(gate.previous, gate.mode, now)
        if gate.resolve:  # maintenance starts: nobody is paged for what happens during it
            transitions += self.control.end_open_alerts(state)
        if gate.rebaseline:
            # Parts and sensors may have been swapped: their models and their health (habits,
            # learned rails) start afresh. Health was not tracked during the work, and its runs
            # were reset when it began, so a sensor unplugged for it raises no `gap`.
            self.models.reset_sensors(state)
            transitions += self.health.forget(state)
        score = 0.0
        if gate.learn:
            health, excluded = self.health.step(
                state, reading.sensors, reading.event_time, reading.machine
            )
            transitions += health
            sensors = reading.sensors
            if excluded:  # a broken sensor's values must not teach its model nor the relations
                sensors = {k: v for k, v in sensors.items() if k not in excluded}
            if sensors:
                score, sensor_scores, joint, warm = self.scorer.score_and_learn(
                    state, reading.machine, sensors, gate.suffix
                )
                transition = None
                if warm:
                    if not gate.settling:  # a machine back from a stop starts no alert yet
                        transition = self.policy.step(
                            state.policy, score, reading.event_time, sensor_scores, joint
                        )
                    if transition is not None:
                        transitions.append(transition)
                    scores.append(score)
                    self._sensor_scores.extend(sensor_scores.values())
                # feedback: log what was learned, so a false positive's episode can be undone
                self.feedback.learned(state, reading.machine, sensors, gate.suffix, transition)
        back = self.presence.seen(state, reading.event_time, now, reading.sensors)
        if back is not None:
            transitions.append(back)
        if transitions:
            source = AlertSource(record.topic, record.partition, record.offset)
            for transition in transitions:
                if gate.alert or transition.status == "resolved":
                    out.alerts.append(self.emit(
                        state, reading.machine, transition, reading.sensors, reading.event_time,
                        source, now,
                    ))
                else:
                    self.metrics.alerts_suppressed.labels(transition.kind).inc()
        return score

    def count_mode_change(self, previous: str | None, mode: str, now: float) -> None:
        """`machines_in_mode`: moved at once when a machine changes mode, recounted over the
        live machines every `MODE_RECOUNT` seconds (new, evicted and released machines)."""
        gauge = self.metrics.machines_in_mode
        if now < self._modes_counted_at and previous is not None:
            gauge.labels(previous).dec()
            gauge.labels(mode).inc()
            return
        self._modes_counted_at = now + MODE_RECOUNT
        counts = Counter(self.modes.mode_of(state) for _, state in self.models.live_states())
        for mode in self.modes.modes:
            gauge.labels(mode).set(counts.get(mode, 0))

    def _check_silence(self, out: BatchOutput, now: float) -> None:
        """The timer's work: alert on machines that stopped reporting."""
        for machine, state, transition in self.presence.check(self.models, now, self.modes.silence_expected):
            source = AlertSource(state.topic, max(state.source, 0), max(state.offset, 0))
            out.alerts.append(self.emit(state, machine, transition, {}, now, source, now))
        self.metrics.machines_silent.set(self.presence.silent)

    def release(self, partitions: Iterable[int]) -> int:
        """Drop the machines of partitions handed to another instance, which now reports them."""
        with self.lock:
            dropped = self.models.drop_partitions(partitions)
            for machine, state in dropped:
                self.alert_emitter.released(machine, state)
            return len(dropped)

    def _check_sensor_budget(self, state: MachineState, reading: Reading) -> None:
        if self._machine_mode:
            return  # one model per machine
        new = sum(1 for sensor in reading.sensors if sensor not in state.entities)
        if new and len(state.entities) + new > self._max_sensors:
            raise InvalidRecord(
                "too_many_sensors",
                f"{new} new sensors would give machine {reading.machine[:64]!r} "
                f"{len(state.entities) + new} > detector.max_sensors_per_machine = {self._max_sensors}",
            )

    def _internal_error(self, exc: Exception) -> InvalidRecord:
        """Count and log (once per kind) a bug met while processing one record."""
        kind = type(exc).__name__
        where = _where(exc)
        self.metrics.internal_errors.labels(kind).inc()
        if (kind, where) not in self._errors_seen:
            self._errors_seen.add((kind, where))
            # The traceback once per kind: a bug hit by every record must not flood the log.
            log.error(
                "internal error %s at %s while processing a record; it goes to the dead-letter "
                "topic (reason internal_error), the service goes on; further %s at %s are only "
                "counted (anomstream_internal_errors_total)",
                kind, where, kind, where, exc_info=exc,
            )
        try:
            message = str(exc)
        except Exception:  # noqa: BLE001 - an exception whose __str__ fails is still reported
            message = "<unprintable>"
        return InvalidRecord("internal_error", f"{kind} at {where}: {message}")

    def _dead_letter(self, record: RecordLike, exc: InvalidRecord) -> OutgoingMessage:
        self.metrics.readings_rejected.labels(exc.reason).inc()
        headers = list(record.headers or [])
        headers += [
            (DLQ_REASON_HEADER, exc.reason.encode()),
            ("anomstream-dlq-detail", exc.detail[:500].encode("utf-8", "replace")),
            ("anomstream-source-topic", record.topic.encode()),
            ("anomstream-source-partition", str(record.partition).encode()),
            ("anomstream-source-offset", str(record.offset).encode()),
        ]
        # The original bytes, untouched, so the record can be fixed and replayed.
        return OutgoingMessage(self.config.kafka.dlq_topic, record.key, record.value or b"", headers)

    def _record_metrics(
        self,
        out: BatchOutput,
        consumed: dict[str, int],
        latencies: list[float],
        scores: list[float],
        started: float,
        before: tuple[int, int, int, int, int],
    ) -> None:
        m = self.metrics
        models = self.models
        scored, created, evicted, restored, rejected = before
        m.readings_scored.inc(self.scorer.scored - scored)
        m.models_created.inc(models.created - created)
        m.models_evicted.inc(models.evicted - evicted)
        m.state_restored.inc(models.restored - restored)
        m.state_rejected.inc(models.rejected - rejected)
        for topic, count in consumed.items():
            m.readings_consumed.labels(topic).inc(count)
        m.end_to_end_latency.observe_many(latencies)
        m.anomaly_score.observe_many(scores)
        m.sensor_score.observe_many(self._sensor_scores)
        self._sensor_scores.clear()
        m.active_models.set(len(self.models))
        if consumed:  # the timer's empty batches are not batches of records
            m.batch_size.observe(sum(consumed.values()))
            m.batch_processing.observe(time.perf_counter() - started)

    def snapshot(self) -> dict[str, Any]:
        """Counts for logs and tests."""
        return {"models": len(self.models), "machines": self.models.machines}


def _where(exc: BaseException) -> str:
    """`module:line in function` of the innermost frame of `exc`'s traceback."""
    tb = exc.__traceback__
    if tb is None:
        return "?"
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame
    return f"{frame.f_globals.get('__name__', '?')}:{tb.tb_lineno} in {frame.f_code.co_name}"
