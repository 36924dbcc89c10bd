"""One machine as JSON, for `GET /machines/{id}`; the fleet in aggregate, for `GET /machines`
and for the model census behind `anomstream_model_age_readings` / `anomstream_models_warming_up`.

Per-machine series would not scale to 100,000 machines, so what an operator wants to know about
one machine is answered here, on demand, from its state: its sensor models (detector, readings
learned, warm or in warm-up), the machine-wide model, the alert policy's phase, the last reading,
its open and recently closed alerts with their attribution, and the sections of the operations
features (`describe(state)` of sensor health, presence, modes and feedback).

Everything is read under `Pipeline.lock`, which the processing loop holds for a whole batch:
a request waits at most `lock_timeout` seconds for a batch to finish, then gives up with `Busy`
(the HTTP layer answers 503), so a scrape or a curl never stalls the loop and never reads a
half-processed batch. `ModelStore.find` answers for machines held here but not live (restored
from the changelog and not read since, or evicted to signed bytes): such a machine is thawed.

Output is plain JSON: non-finite floats become null, and every number under a key ending in
`_at` or `_time` is an epoch time rendered as RFC 3339 UTC (the features' sections included), so
the features keep epoch seconds in their state and the reader gets readable times.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from anomstream.detectors.entities import MACHINE_WIDE, Entity, MachineState
from anomstream.stream import alert_book
from anomstream.stream.alerts import iso_time
from anomstream.stream.metrics import Census

if TYPE_CHECKING:
    from anomstream.stream.pipeline import Pipeline

__all__ = ["LIST_LIMIT", "Busy", "DrillDown", "json_safe"]

LIST_LIMIT = 100  # machines named by `GET /machines`: a page for a person, not a fleet dump


class Busy(Exception):
    """The pipeline held its lock for longer than the request may wait."""


class DrillDown:
    """Read-only views of a pipeline's state for the HTTP thread."""

    def __init__(
        self, pipeline: Pipeline, *, lock_timeout: float = 5.0, list_limit: int = LIST_LIMIT
    ) -> None:
        if lock_timeout <= 0:
            raise ValueError(f"lock_timeout must be > 0 (got {lock_timeout!r})")
        self.pipeline = pipeline
        self.lock_timeout = lock_timeout
        self.list_limit = list_limit

    @contextmanager
    def _locked(self, timeout: float | None = None) -> Iterator[None]:
        lock = self.pipeline.lock
        wait = self.lock_timeout if timeout is None else timeout
        if not lock.acquire(timeout=wait):
            raise Busy(f"the pipeline is busy with a batch (waited {wait} s)")
        try:
            yield
        finally:
            lock.release()

    # ------------------------------------------------------------------ GET /machines/{id}

    def machine(self, machine: str) -> dict[str, Any] | None:
        """The machine's JSON, or None when this instance does not hold it."""
        p = self.pipeline
        with self._locked():
            state = p.models.find(machine)
            if state is None:
                return None
            sections = {
                "health": p.health.describe(state),
                "presence": p.presence.describe(state),
                "mode": p.modes.describe(state),
                "feedback": p.feedback.describe(state),
            }
            body = {
                "machine_id": machine,
                "partition": state.partition,
                "readings": state.readings,
                "warmup": p.config.detector.warmup,
                "sensors": [self._model(name, e) for name, e in sorted(state.entities.items())
                            if name != MACHINE_WIDE],
                "machine_model": self._machine_model(state),
                "policy": _policy(state),
                "last_reading": _last_reading(state, sections["presence"]),
                "open_alerts": [_alert(e) for e in alert_book.open_alerts(state)],
                "recent_alerts": [_alert(e) for e in reversed(_recent(state))],
                **sections,
            }
            return json_safe(body)

    def _model(self, name: str, entity: Entity) -> dict[str, Any]:
        warmup = self.pipeline.config.detector.warmup
        return {
            "name": name,
            "detector": entity.detector,
            "learned": entity.learned,
            "warm": entity.learned >= warmup,
        }

    def _machine_model(self, state: MachineState) -> dict[str, Any] | None:
        """The relations model (`detector.machine_model`), or the single model of `machine`
        entity mode; None when the machine has neither."""
        entity = state.joint if state.joint is not None else state.entities.get(MACHINE_WIDE)
        return None if entity is None else self._model(MACHINE_WIDE, entity)

    # ------------------------------------------------------------------ GET /machines

    def machines(self) -> dict[str, Any]:
        """Counts, and the first `list_limit` machines with an open alert (by id): bounded
        whatever the fleet. One pass over the live machines (about 10 ms per 100,000)."""
        p = self.pipeline
        with self._locked():
            alerting = sorted(m for m, st in p.models.live_states() if alert_book.open_alerts(st))
            return {
                "machines_live": p.models.machines,
                "models_live": len(p.models),
                "machines_with_open_alerts": len(alerting),
                "with_open_alerts": alerting[: self.list_limit],
                "truncated": len(alerting) > self.list_limit,
                "detail": "/machines/{machine_id} (URL-encoded)",
            }

    # ------------------------------------------------------------------ the model census

    def census(self) -> Census | None:
        """Every live model's readings learned and how many are in warm-up, for
        `ModelCensus`; None when the pipeline stays busy (the last census is served again)."""
        warmup = self.pipeline.config.detector.warmup
        try:
            with self._locked(timeout=1.0):  # a scrape must not wait out a slow batch
                # Flat comprehensions, no generator per machine: this holds the loop's lock.
                states = [st for _, st in self.pipeline.models.live_states()]
                learned = [e.learned for st in states for e in st.entities.values()]
                learned += [st.joint.learned for st in states if st.joint is not None]
        except Busy:
            return None
        ages = np.array(learned, dtype=np.int64)
        return ages, int(np.count_nonzero(ages < warmup))


def _policy(state: MachineState) -> dict[str, Any]:
    """The alert policy's phase: normal, pending (an anomalous run started), firing, cooldown."""
    policy = state.policy
    episode = policy.phase != "normal"
    return {
        "phase": policy.phase,
        "run": policy.run,
        "started_at": policy.started_at if episode else None,
        "peak_score": policy.peak if episode else None,
    }


def _last_reading(state: MachineState, presence: Mapping[str, Any]) -> dict[str, Any] | None:
    """Where the last reading came from and when. The event time is the presence tracker's
    (`last_event_time`); the processing time is the store's while the machine is live, else
    the presence tracker's checkpointed `last_seen_at`."""
    if state.offset < 0:
        return None
    processed = state.last_seen or presence.get("last_seen_at")
    return {
        "topic": state.topic,
        "partition": state.source if state.source >= 0 else state.partition,
        "offset": state.offset,
        "event_time": presence.get("last_event_time"),
        "processed_at": processed or None,
    }


def _recent(state: MachineState) -> list[dict[str, Any]]:
    book = state.ops.get("alerts")
    return list(book["recent"]) if book else []


def _alert(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An alert book entry with its attribution as a list, largest share first (as in the
    alert message); every other field as the book holds it."""
    out = dict(entry)
    shares = entry.get("sensors") or {}
    out["sensors"] = [
        {"name": name, "contribution": round(float(share), 4)}
        for name, share in sorted(shares.items(), key=lambda kv: -kv[1])
    ]
    return out


def json_safe(value: Any, key: str = "") -> Any:
    """`value` as strict JSON data: NaN/inf -> null, numpy scalars -> Python, tuples and sets
    -> lists, epoch numbers under `*_at` / `*_time` keys -> RFC 3339, anything else -> str.

    >>> json_safe({"fired_at": 0.0, "score": float("nan"), "n": (1, 2)})
    {'fired_at': '1970-01-01T00:00:00.000Z', 'score': None, 'n': [1, 2]}
    """
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v, key) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            return None
        if key.endswith(("_at", "_time")):
            return iso_time(float(value))
        return value
    return str(value)
