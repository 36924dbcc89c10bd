"""Operating modes and maintenance windows (STUB: to be built).

Contract with the pipeline:
- `gate(machine, state, event_time)` runs once per reading, before anything else: a `Gate`
  saying the machine's mode, whether its models learn (and score), whether its alerts are
  published, the entity-key suffix of a mode that learns separately, and whether its models
  restart their baseline now (the first reading after maintenance);
- `silence_expected(state, now)` tells the presence check not to call a machine in maintenance
  silent;
- `describe(state)` is the JSON-able mode and maintenance state for `GET /machines/{id}`.
State lives in `state.ops["modes"]`, plain versioned data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from anomstream.detectors.entities import MachineState

__all__ = ["DEFAULT_MODE", "Gate", "Modes"]

DEFAULT_MODE = "production"


@dataclass(frozen=True)
class Gate:
    mode: str = DEFAULT_MODE
    learn: bool = True  # models score and learn (and health codes are tracked)
    alert: bool = True  # firing alerts are published (else counted as suppressed)
    suffix: str = ""  # appended to sensor entity keys: a mode with its own models
    rebaseline: bool = False  # restart every model's baseline before this reading


OPEN = Gate()


class Modes:
    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled

    @classmethod
    def from_config(cls, config: Any) -> Modes:
        return cls(enabled=config.enabled)

    def gate(self, machine: str, state: MachineState, event_time: float) -> Gate:
        return OPEN

    def silence_expected(self, state: MachineState, now: float) -> bool:
        """True while the machine is in maintenance or a mode in which it may stop reporting:
        the presence check then raises no `silent` alert for it."""
        return False

    def describe(self, state: MachineState) -> dict[str, Any]:
        return {}
