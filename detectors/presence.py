"""Silent machines: each machine's usual reporting interval, and `kind: silent` alerts when it
reports nothing for much longer (STUB: to be built).

Contract with the pipeline:
- `seen(state, event_time, now)` runs on every reading of the machine: it learns the interval
  and returns the resolving transition when the machine had a silent alert open;
- `due(now)` says whether the timer check is due (the service calls the pipeline when idle);
- `check(store, now)` returns (machine, state, firing transition) for machines gone silent;
- `describe(state)` is the JSON-able presence of the machine for `GET /machines/{id}`.
State lives in `state.ops["presence"]`, plain versioned data.
"""

from __future__ import annotations

from typing import Any

from anomstream.detectors.entities import MachineState, ModelStore
from anomstream.detectors.policy import Transition

__all__ = ["Presence"]


class Presence:
    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled

    @classmethod
    def from_config(cls, config: Any) -> Presence:
        return cls(enabled=config.enabled)

    def seen(self, state: MachineState, event_time: float, now: float) -> Transition | None:
        return None

    def due(self, now: float) -> bool:
        return False

    def check(self, store: ModelStore, now: float) -> list[tuple[str, MachineState, Transition]]:
        return []

    def describe(self, state: MachineState) -> dict[str, Any]:
        return {}
