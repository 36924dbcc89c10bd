"""The control topic: mode and maintenance messages (`config/schemas/control-v1.json`).

A message, keyed by machine id (so it lands on the partition of the machine's readings):
`{"schema": "anomstream.control/v1", "machine_id": "press-07", "mode": "maintenance",
"from": "2026-12-02T06:00:00Z", "until": "2026-12-02T08:00:00Z"}`. `from` and `until` are
event times, read like the telemetry's timestamps (ISO-8601 or epoch seconds/milliseconds);
`until` is optional (then: until a later message). `mode` is `maintenance`, `production` (which
ends a maintenance) or an operating mode of `modes.learning`.

The window is recorded in the machine's state (`Modes.schedule`), so it survives restarts and
rebalances, and applying a message twice changes nothing (`duplicate`). A machine this instance
has never seen is accepted: its state is created with the window, so a maintenance announced
before a machine (re)appears still holds when it does. A maintenance already in force when the
message arrives (by the clock) resolves the machine's open alerts at once, instead of at its
next reading: "we are servicing press-07" ends its page even if press-07 is switched off.

Counted in `anomstream_control_messages_total{result}`: applied, duplicate, expired (it ended
before the machine's last reading) and rejected (a dead letter: `bad_control`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from anomstream.detectors.entities import MachineState
from anomstream.detectors.modes import MAINTENANCE
from anomstream.detectors.policy import Transition
from anomstream.stream.alerts import AlertSource
from anomstream.stream.errors import InvalidRecord
from anomstream.stream.telemetry import valid_name

if TYPE_CHECKING:
    from anomstream.stream.pipeline import BatchOutput, Pipeline, RecordLike

__all__ = ["SCHEMA", "ControlHandler", "ControlMessage"]

SCHEMA = "anomstream.control/v1"
MAX_BYTES = 4096  # a control message is a few fields: anything larger is not one
_FIELDS = frozenset({"schema", "machine_id", "mode", "from", "until", "reason", "by"})


class ControlMessage:
    """A decoded control message."""

    __slots__ = ("machine", "mode", "start", "until")

    def __init__(self, machine: str, mode: str, start: float, until: float | None) -> None:
        self.machine, self.mode, self.start, self.until = machine, mode, start, until


class ControlHandler:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def handle(self, record: RecordLike, out: BatchOutput, now: float) -> None:
        pipeline = self.pipeline
        try:
            message = self.decode(record)
        except InvalidRecord:
            pipeline.metrics.control.labels("rejected").inc()
            raise
        models = pipeline.models
        state = models.find(message.machine)
        if state is None:  # never seen here: the window waits for its first reading
            state = models.machine(message.machine, record.partition, now)
        modes = pipeline.modes
        result = modes.schedule(state, message.machine, message.mode, message.start, message.until, now)
        pipeline.metrics.control.labels(result).inc()
        if result != "applied":
            return
        state.dirty = True
        if message.mode == MAINTENANCE and modes.in_force(state, now) == MAINTENANCE:
            previous = modes.begin(state, MAINTENANCE, now)
            if previous != MAINTENANCE:
                pipeline.count_mode_change(previous, MAINTENANCE, now)
            source = AlertSource(record.topic, record.partition, record.offset)
            for transition in self.end_open_alerts(state):
                out.alerts.append(pipeline.emit(state, message.machine, transition, {}, now, source, now))

    def end_open_alerts(self, state: MachineState) -> list[Transition]:
        """Resolve the machine's open anomaly and health alerts (maintenance starts)."""
        resolved = self.pipeline.policy.resolve_now(state.policy)
        return ([resolved] if resolved is not None else []) + self.pipeline.health.resolve_all(state)

    def decode(self, record: RecordLike) -> ControlMessage:
        """The message in `record`, or `InvalidRecord("bad_control", why)`."""
        value = record.value
        if not value or len(value) > MAX_BYTES:
            raise _bad(f"value empty or longer than {MAX_BYTES} bytes")
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise _bad(f"not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise _bad("not a JSON object")
        if doc.get("schema") != SCHEMA:
            raise _bad(f"'schema' must be {SCHEMA!r}")
        unknown = sorted(set(doc) - _FIELDS)
        if unknown:
            raise _bad(f"unknown fields {unknown[:5]}")
        machine = doc.get("machine_id")
        if not isinstance(machine, str) or not valid_name(machine):
            raise _bad("'machine_id' missing, not a string or not a valid machine id")
        if record.key != machine.encode():
            # The key routes the message to the partition, hence the instance, of the machine.
            raise _bad("the record key must be the machine id")
        mode = doc.get("mode")
        if not isinstance(mode, str) or mode not in self.pipeline.modes.modes:
            raise _bad(f"'mode' must be one of {', '.join(self.pipeline.modes.modes)} (modes.learning)")
        start = self._time(doc, "from")
        until = self._time(doc, "until") if doc.get("until") is not None else None
        if until is not None and until <= start:
            raise _bad("'until' must be later than 'from'")
        return ControlMessage(machine, mode, start, until)

    def _time(self, doc: dict[str, Any], field: str) -> float:
        if doc.get(field) is None:
            raise _bad(f"'{field}' missing")
        try:
            return self.pipeline.decoder.timestamp(doc.get(field))
        except InvalidRecord as exc:
            raise _bad(f"'{field}': {exc.detail}") from None


def _bad(why: str) -> InvalidRecord:
    return InvalidRecord("bad_control", why)
