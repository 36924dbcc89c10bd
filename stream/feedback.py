"""The operator feedback topic: `false_positive`, `confirmed`, `maintenance_done` on an alert id.

An operator, or a CMMS/MES integration, publishes one JSON message per decision on
`feedback.topic`, keyed by machine id (schema: `config/schemas/feedback-v1.json`; user
documentation: `docs/operations/feedback.md`). Each message is applied once: the keys
`alert_id:action` applied are recorded in the machine's state (`state.ops["feedback"]`), which is
checkpointed with the machine, and the topic's offsets are committed at checkpoints like the
input's. A message seen again (replayed after a crash, or produced twice) finds its key and is
counted `duplicate`, changing nothing.

- `false_positive` on an anomaly: the episode's learning is undone (`EpisodeUndo`: the models
  end as if they had never seen its readings) and an open alert resolves. On other kinds
  (health codes, silent) it is recorded on the alert and counted, nothing else: those trackers
  do not learn from the readings they flag, and they resolve by themselves.
- `confirmed`: recorded on the alert's entry in the machine's alert book, counted.
- `maintenance_done`: the named sensors (default: the alert's) restart their baseline, models
  and health tracking; an open anomaly alert on those sensors only resolves, and so do their
  open health codes.

Unusable messages raise `InvalidRecord` (dead letters): `bad_feedback` (not the schema),
`unknown_machine` (no state here for it), `unknown_alert` (its machine does not remember it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from anomstream.detectors.entities import MachineState
from anomstream.detectors.episode_undo import EpisodeUndo
from anomstream.detectors.policy import FIRING, Transition
from anomstream.stream import alert_book
from anomstream.stream.alerts import AlertSource, alert_id
from anomstream.stream.errors import InvalidRecord

if TYPE_CHECKING:
    from anomstream.stream.pipeline import BatchOutput, Pipeline, RecordLike

__all__ = ["ACTIONS", "REMEMBERED", "SCHEMA", "Feedback", "FeedbackHandler", "parse_feedback"]

SCHEMA = "anomstream.feedback/v1"
ACTIONS = ("false_positive", "confirmed", "maintenance_done")
# Applied `alert_id:action` keys kept per machine. A duplicate older than that is applied again:
# harmless for confirmed, and for the others the alert has long left the book (16 remembered),
# so it is then `unknown_alert`.
REMEMBERED = 64
NOTES = 8  # feedback notes kept on one alert's book entry
_REQUIRED = {"schema", "alert_id", "machine_id", "action", "by", "at"}
_OPTIONAL = {"sensors", "note"}
_LIMITS = {"alert_id": 64, "machine_id": 256, "by": 200, "note": 2000, "sensor": 256}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Feedback:
    alert_id: str
    machine_id: str
    action: str
    by: str
    at: float  # epoch seconds
    note: str = ""
    sensors: tuple[str, ...] = ()  # maintenance_done only; empty: the alert's sensors


def parse_feedback(key: bytes | None, value: bytes | None) -> Feedback:
    """Decode and validate one message; `InvalidRecord("bad_feedback", why)` if unusable.

    Examples
    --------
    >>> fb = parse_feedback(b"press-07", b'{"schema": "anomstream.feedback/v1", "alert_id": "'
    ...     + b"0" * 32 + b'", "machine_id": "press-07", "action": "confirmed", "by": "op-7",'
    ...     b' "at": "2026-12-02T03:00:00Z"}')
    >>> fb.action, fb.at
    ('confirmed', 1796180400.0)
    >>> parse_feedback(b"press-07", b'{"schema": "anomstream.feedback/v1"}')
    Traceback (most recent call last):
    ...
    anomstream.stream.errors.InvalidRecord: bad_feedback: missing action, alert_id, at, by, machine_id
    """
    try:
        msg = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        raise _bad(f"not JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise _bad("not a JSON object")
    missing = sorted(_REQUIRED - msg.keys())
    if missing:
        raise _bad(f"missing {', '.join(missing)}")
    unknown = sorted(msg.keys() - _REQUIRED - _OPTIONAL)
    if unknown:
        raise _bad(f"unknown field {', '.join(unknown)}")
    if msg["schema"] != SCHEMA:
        raise _bad(f"schema must be {SCHEMA!r}")
    text = {name: _text(msg, name) for name in ("alert_id", "machine_id", "by")}
    if not all(c in "0123456789abcdef" for c in text["alert_id"]) or len(text["alert_id"]) != 32:
        raise _bad("alert_id must be 32 lowercase hex characters, as in the alert")
    action = msg["action"]
    if action not in ACTIONS:
        raise _bad(f"action must be one of {', '.join(ACTIONS)}")
    if key is not None and key != text["machine_id"].encode():
        # The key routes the message to the instance that holds the machine.
        raise _bad("record key differs from machine_id")
    sensors: tuple[str, ...] = ()
    if "sensors" in msg:
        if action != "maintenance_done":
            raise _bad("sensors are only for maintenance_done")
        raw = msg["sensors"]
        if not isinstance(raw, list) or not raw or not all(isinstance(s, str) and s for s in raw):
            raise _bad("sensors must be a non-empty list of sensor names")
        if len(set(raw)) != len(raw) or max(map(len, raw)) > _LIMITS["sensor"]:
            raise _bad("sensors must be distinct names of at most 256 characters")
        sensors = tuple(raw)
    note = _text(msg, "note", empty=True) if "note" in msg else ""
    return Feedback(
        text["alert_id"], text["machine_id"], action, text["by"], _time(msg["at"]), note, sensors
    )


def _text(msg: Mapping[str, Any], name: str, *, empty: bool = False) -> str:
    value = msg[name]
    if not isinstance(value, str) or (not value and not empty):
        raise _bad(f"{name} must be a {'' if empty else 'non-empty '}string")
    if len(value) > _LIMITS[name]:
        raise _bad(f"{name} longer than {_LIMITS[name]} characters")
    return value


def _time(value: Any) -> float:
    if not isinstance(value, str):
        raise _bad("at must be an ISO-8601 time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _bad(f"at is not an ISO-8601 time: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        raise _bad("at needs a time zone (Z or +hh:mm)")
    return parsed.timestamp()


def _bad(why: str) -> InvalidRecord:
    return InvalidRecord("bad_feedback", why)


class FeedbackHandler:
    """Applies feedback messages to the pipeline's machines; owns their episode undo logs."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        config = pipeline.config
        window = config.feedback.undo_window if config.feedback.enabled else 0
        self.undo = EpisodeUndo(
            pipeline.models, pipeline.relearn, window=window,
            machine_mode=config.detector.entity == "machine",
        )
        self.learned = self.undo.learned  # the pipeline's hook after every learned reading

    def handle(self, record: RecordLike, out: BatchOutput, now: float) -> None:
        fb = parse_feedback(record.key, record.value)
        counter = self.pipeline.metrics.feedback
        state = self.pipeline.models.find(fb.machine_id)
        if state is None:
            counter.labels(fb.action, "unknown_machine").inc()
            raise InvalidRecord("unknown_machine", f"no state for machine {fb.machine_id[:64]!r} here")
        entry = alert_book.find(state, fb.alert_id)
        if entry is None:
            counter.labels(fb.action, "unknown_alert").inc()
            raise InvalidRecord(
                "unknown_alert", f"machine {fb.machine_id[:64]!r} does not remember {fb.alert_id}"
            )
        book = state.ops.setdefault("feedback", {"v": 1, "applied": []})
        key = f"{fb.alert_id}:{fb.action}"
        if key in book["applied"]:
            counter.labels(fb.action, "duplicate").inc()
            return
        source = AlertSource(record.topic, record.partition, record.offset)
        if fb.action == "false_positive":
            result = self._false_positive(state, fb, entry, source, out, now)
        elif fb.action == "maintenance_done":
            result = self._maintenance_done(state, fb, entry, source, out, now)
        else:
            result = "applied"
        book["applied"].append(key)
        del book["applied"][:-REMEMBERED]
        notes = entry.setdefault("feedback", [])
        notes.append({"action": fb.action, "by": fb.by, "at": fb.at, "note": fb.note, "result": result})
        del notes[:-NOTES]
        state.dirty = True
        counter.labels(fb.action, result).inc()
        if result in ("too_late", "no_snapshot"):
            log.warning("false_positive on alert %s of %r by %r: resolved, but its learning is not "
                        "undone (%s; see docs/operations/feedback.md)",
                        fb.alert_id, fb.machine_id, fb.by, result)
        else:
            log.info("feedback %s on alert %s of %r by %r: %s",
                     fb.action, fb.alert_id, fb.machine_id, fb.by, result)

    def _false_positive(
        self, state: MachineState, fb: Feedback, entry: dict[str, Any], source: AlertSource,
        out: BatchOutput, now: float,
    ) -> str:
        if entry["kind"] != "anomaly":
            return "recorded"  # health codes and silent: nothing learned from them to undo
        result = self.undo.undo(state, fb.machine_id, entry["started_at"])
        self._resolve(state, fb, source, out, now)
        return result

    def _maintenance_done(
        self, state: MachineState, fb: Feedback, entry: dict[str, Any], source: AlertSource,
        out: BatchOutput, now: float,
    ) -> str:
        sensors = set(fb.sensors or entry["sensors"])
        # A mode that learns on its own has its models under `sensor@mode`: reset them too.
        names = [k for k in state.entities if k in sensors or k.split("@", 1)[0] in sensors]
        self.pipeline.models.reset_sensors(state, names)
        self.undo.forget(fb.machine_id)  # the log would lead back to the old baselines
        if entry["kind"] == "anomaly" and set(entry["sensors"]) <= sensors:
            self._resolve(state, fb, source, out, now)
        # A serviced or replaced sensor's habits and rails are learned afresh too; its open
        # health codes resolve (whatever alert the feedback was about).
        for transition in self.pipeline.health.forget(state, sorted(sensors)):
            out.alerts.append(self.pipeline.emit(state, fb.machine_id, transition, {}, fb.at, source, now))
        return "applied"

    def _resolve(
        self, state: MachineState, fb: Feedback, source: AlertSource, out: BatchOutput, now: float
    ) -> None:
        """Resolve the machine's open anomaly alert if it is the one the feedback is about."""
        policy = state.policy
        open_id = alert_id(fb.machine_id, list(policy.sensors), policy.started_at)
        if policy.phase != FIRING or open_id != fb.alert_id:
            return  # already resolved, or another episode is open now
        transition: Transition | None = self.pipeline.policy.resolve_now(policy)
        if transition is None:
            return
        detail = f"{fb.action} by {fb.by}" + (f": {fb.note}" if fb.note else "")
        transition = replace(transition, detail=detail[:500])
        out.alerts.append(self.pipeline.emit(state, fb.machine_id, transition, {}, fb.at, source, now))

    def describe(self, state: MachineState) -> dict[str, Any]:
        """For `GET /machines/{id}`: the feedback applied to the machine (its alerts' entries
        carry the notes)."""
        book = state.ops.get("feedback")
        return {"applied": list(book["applied"]) if book else []}
