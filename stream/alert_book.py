"""Each machine's open alerts, and its last few closed ones: `MachineState.ops["alerts"]`.

A machine can have several alerts open at once: one anomaly episode, a health code per broken
sensor, `silent`. The book is what knows them all by id, so that

- operator feedback on an `alert_id` finds its alert, open or recently closed;
- `GET /machines/{id}` lists the open alerts with their attribution;
- a restarted or rebalanced instance shows the restored open alerts in its gauges.

It is plain data, versioned (`"v": 1`), checkpointed with the machine.
"""

from __future__ import annotations

from typing import Any

from anomstream.detectors.entities import MachineState
from anomstream.detectors.policy import Transition

__all__ = ["RECENT", "close", "find", "open_alerts", "record"]

RECENT = 16  # closed alerts remembered per machine: feedback usually comes within a shift


def _book(state: MachineState) -> dict[str, Any]:
    book = state.ops.get("alerts")
    if book is None:
        book = state.ops["alerts"] = {"v": 1, "open": {}, "recent": []}
    return book


def record(state: MachineState, ident: str, transition: Transition, event_time: float) -> None:
    """Enter a firing transition as open, move a resolved one to the recent list."""
    book = _book(state)
    if transition.status == "firing":
        book["open"][ident] = _entry(ident, transition, event_time)
        return
    entry = book["open"].pop(ident, None)
    if entry is None:  # resolved without a recorded firing (state from before the book)
        entry = _entry(ident, transition, transition.started_at)
    entry["resolved_at"] = event_time
    close(state, entry)


def _entry(ident: str, transition: Transition, fired_at: float) -> dict[str, Any]:
    return {
        "alert_id": ident,
        "kind": transition.kind,
        "severity": transition.severity,
        "started_at": transition.started_at,
        "fired_at": fired_at,
        "score": transition.score,
        "sensors": dict(transition.sensors),
        "detail": transition.detail,
    }


def close(state: MachineState, entry: dict[str, Any]) -> None:
    """Append a closed alert's entry to the recent list, keeping the last `RECENT`."""
    recent = _book(state)["recent"]
    recent.append(entry)
    del recent[:-RECENT]


def open_alerts(state: MachineState) -> list[dict[str, Any]]:
    """The machine's open alerts, oldest first."""
    book = state.ops.get("alerts")
    return list(book["open"].values()) if book else []


def find(state: MachineState, ident: str) -> dict[str, Any] | None:
    """The open or recently closed alert with this id (open entries have no `resolved_at`)."""
    book = state.ops.get("alerts")
    if not book:
        return None
    entry = book["open"].get(ident)
    if entry is not None:
        return entry
    return next((e for e in reversed(book["recent"]) if e["alert_id"] == ident), None)
