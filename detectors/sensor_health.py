"""Sensor-health codes: stuck, flatline, railed, gap and out-of-range sensors (STUB: to be built).

Contract with the pipeline (`anomstream.stream.pipeline`):
- `step(state, sensors, event_time)` runs once per reading, before the models; it returns the
  health transitions (firing/resolved, `Transition.kind` = the code) and the sensors whose
  values must not reach the models while their code is open;
- `resolve_all(state)` ends every open health alert of the machine (maintenance starts);
- `describe(state)` is the JSON-able health of the machine's sensors for `GET /machines/{id}`.
State lives in `state.ops["health"]`, plain versioned data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from anomstream.detectors.entities import MachineState
from anomstream.detectors.policy import Transition

__all__ = ["SensorHealth"]


class SensorHealth:
    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled

    @classmethod
    def from_config(cls, config: Any) -> SensorHealth:
        return cls(enabled=config.enabled)

    def step(
        self, state: MachineState, sensors: Mapping[str, float], event_time: float
    ) -> tuple[list[Transition], frozenset[str]]:
        return [], frozenset()

    def resolve_all(self, state: MachineState) -> list[Transition]:
        return []

    def describe(self, state: MachineState) -> dict[str, Any]:
        return {}
