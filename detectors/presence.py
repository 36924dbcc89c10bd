"""Silent machines: each machine's usual reporting interval, and `kind: silent` alerts when it
reports nothing for much longer (docs/operations/silence.md).

The usual interval is the median of the last `WINDOW` gaps between the event times of the
machine's consecutive readings: a median ignores the odd late reading and the machine's own
silences (fewer than half of its recent gaps), and the gap that ends a silent alert is not
learned at all. Out-of-order and same-time readings (gap <= 0) teach nothing. The interval is
trusted once `min_readings` readings were seen; before that the machine is never called silent.

"Last seen" is the wall-clock time (`now`) at which the machine's last reading was processed,
not its event time: the timer compares it with the wall clock, and a backlog processed late
is still a machine that reported. A machine is silent once nothing arrived for longer than
`factor` x its usual interval and at least `min_silence_seconds`. Its clock starts no earlier
than when this instance got the machine's partition (`hold`), nor than the last check that found
its silence expected (maintenance): after a restart, a rebalance or a service outage every
machine would otherwise look silent at once.

Contract with the pipeline:
- `seen(state, event_time, now, sensors)` runs on every reading of the machine: it learns the
  interval and returns the resolving transition when the machine had a silent alert open;
- `due(now)` says whether the timer check is due (the service calls the pipeline when idle);
- `check(store, now, expected)` returns (machine, state, firing transition) for machines gone
  silent, live or not: machines that are not live are looked at through the store's index of
  their signed headers (`ModelStore.cold_headers`), and only those going silent are thawed;
- `describe(state)` is the JSON-able presence of the machine for `GET /machines/{id}`.

State lives in `state.ops[OPS_KEY]`, plain versioned data:
`{"v": 1, "header": [last seen (wall clock), usual interval (0.0: not trusted yet), severity of
the open silent alert ("" if none)], "last": event time of the last reading, "gaps": [...],
"sensors": [the last reading's sensors], "excused": last check that found its silence expected
(only once one did)}`. `header` is what the timer needs; it is also signed
into the checkpoint's header, readable without unpickling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from statistics import median
from typing import Any

from anomstream.detectors.entities import MachineState, ModelStore
from anomstream.detectors.policy import Transition

__all__ = ["KIND", "OPS_KEY", "WINDOW", "Presence"]

KIND = "silent"
OPS_KEY = "presence"  # its entry in `MachineState.ops`
WINDOW = 31  # gaps kept per machine: an odd count has a true median
_SEEN, _INTERVAL, _OPEN = 0, 1, 2  # positions in the header

Expected = Callable[[MachineState, float], bool]


class Presence:
    """Learns each machine's interval; finds silent machines on a timer.

    Examples
    --------
    >>> from anomstream.detectors.entities import MachineState
    >>> presence = Presence(factor=5.0, min_silence_seconds=0.0, min_readings=3)
    >>> state = MachineState()
    >>> for t in range(4):
    ...     presence.seen(state, event_time=100.0 + t, now=1000.0 + t, sensors=["temp"])
    >>> presence.describe(state)["usual_interval_seconds"]
    1.0
    >>> presence.silent_for(state, now=1008.0, partition=0) is None
    True
    >>> presence.silent_for(state, now=1008.5, partition=0)
    5.5
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        factor: float = 10.0,
        min_silence_seconds: float = 60.0,
        min_readings: int = 10,
        check_interval_seconds: float = 5.0,
        severity: str = "warning",
    ) -> None:
        if factor < 1.0:
            raise ValueError(f"factor must be >= 1 (got {factor!r})")
        if min_readings < 3:
            raise ValueError(f"min_readings must be >= 3 (got {min_readings!r})")
        self.enabled = enabled
        self.factor = factor
        self.min_silence_seconds = min_silence_seconds
        self.min_readings = min_readings
        self.check_interval_seconds = check_interval_seconds
        self.severity = severity
        self.silent = 0  # machines with a silent alert open, as of the last check
        self._window = max(WINDOW, min_readings - 1)
        self._next_check = 0.0
        self._held: dict[int, float] = {}  # partition -> wall time this instance got it

    @classmethod
    def from_config(cls, config: Any) -> Presence:
        return cls(
            enabled=config.enabled,
            factor=config.factor,
            min_silence_seconds=config.min_silence_seconds,
            min_readings=config.min_readings,
            check_interval_seconds=config.check_interval_seconds,
            severity=config.severity,
        )

    # ------------------------------------------------------------------ per reading

    def seen(
        self, state: MachineState, event_time: float, now: float, sensors: Iterable[str] = ()
    ) -> Transition | None:
        """Learn from one reading of the machine; the resolving transition if it was silent."""
        p = state.ops.get(OPS_KEY)
        if not self.enabled and (p is None or not p["header"][_OPEN]):
            return None  # disabled: only an alert opened before still resolves
        if p is None:
            p = state.ops[OPS_KEY] = {
                "v": 1, "header": [now, 0.0, ""], "last": None, "gaps": [], "sensors": [],
            }
        header, last = p["header"], p["last"]
        back = None
        if header[_OPEN]:
            away = f"reported again after {now - header[_SEEN]:.0f} s"
            back = self._transition(p, "resolved", header[_OPEN], away)
            self.silent = max(self.silent - 1, 0)
        elif last is not None and event_time > last:  # the gap ending a silence is not "usual"
            gaps = p["gaps"]
            gaps.append(event_time - last)
            del gaps[: -self._window]
            if len(gaps) >= self.min_readings - 1:
                header[_INTERVAL] = median(gaps)
        if last is None or event_time > last:
            p["last"] = event_time
        header[_SEEN], header[_OPEN] = now, ""
        names = list(sensors)
        if names and names != p["sensors"]:
            p["sensors"] = names
        return back

    # ------------------------------------------------------------------ the timer

    def hold(self, partitions: Iterable[int], now: float) -> None:
        """This instance got `partitions` at `now`: their machines' silence counts from then."""
        for partition in partitions:
            self._held[partition] = now

    def due(self, now: float) -> bool:
        return self.enabled and now >= self._next_check

    def silent_for(self, state: MachineState, now: float, partition: int | None = None) -> float | None:
        """Seconds since the machine's last reading if it is silent now (alert open or not),
        else None."""
        p = state.ops.get(OPS_KEY)
        if p is None:
            return None
        where = state.partition if partition is None else partition
        return self._silent(p["header"], where, now, p.get("excused", 0.0))

    def _silent(self, header: Sequence[Any], partition: int, now: float, excused: float = 0.0) -> float | None:
        seen, interval = header[_SEEN], header[_INTERVAL]
        if interval <= 0.0:
            return None  # not trusted yet
        start = max(seen, self._held.get(partition, 0.0), excused)
        if now - start <= max(self.factor * interval, self.min_silence_seconds):
            return None
        return now - seen

    def check(
        self, store: ModelStore, now: float, expected: Expected | None = None
    ) -> list[tuple[str, MachineState, Transition]]:
        """Firing transitions of the machines gone silent since the last check."""
        if not self.enabled:
            return []
        self._next_check = now + self.check_interval_seconds
        live = ((m, st.partition, p["header"], st) for m, st in store.live_states()
                if (p := st.ops.get(OPS_KEY)) is not None)
        cold = ((m, partition, header, None)
                for m, (partition, header) in store.cold_headers(OPS_KEY).items())
        silent = 0
        quiet: list[tuple[str, MachineState | None]] = []
        held, factor, least = self._held, self.factor, self.min_silence_seconds
        for machine, partition, (seen, interval, open_), state in chain(live, cold):
            # `_silent` inlined, without the maintenance excuse (looked at below for the few
            # found here): this loop runs over every machine held, 100,000 of them or more.
            if open_:
                silent += 1
            elif interval > 0.0 and now - max(seen, held.get(partition, 0.0)) > max(factor * interval, least):
                quiet.append((machine, state))
        fired = []
        for machine, held_state in quiet:
            # Only the few machines going silent are unpickled (`find` thaws a cold one).
            state = held_state if held_state is not None else store.find(machine)
            if state is None or self.silent_for(state, now) is None:
                continue  # rejected state (afresh on its next reading), or excused since
            if expected is not None and expected(state, now):
                # Maintenance: its silence counts from the end of it, not from its last reading.
                state.ops[OPS_KEY]["excused"] = now
                continue
            fired.append((machine, state, self._fire(state, now)))
        self.silent = silent + len(fired)
        return fired

    def _fire(self, state: MachineState, now: float) -> Transition:
        p = state.ops[OPS_KEY]
        header = p["header"]
        seen, interval = header[_SEEN], header[_INTERVAL]
        header[_OPEN] = self.severity
        state.dirty = True
        detail = f"no reading for {now - seen:.0f} s (usual interval {interval:.3g} s)"
        return self._transition(p, "firing", self.severity, detail)

    @staticmethod
    def _transition(p: dict[str, Any], status: str, severity: str, detail: str) -> Transition:
        # The id comes from machine, sensors, started_at and kind: the resolution, computed from
        # the same stored `last` and `sensors`, carries the firing's id.
        names = p["sensors"] or ["*"]  # an alert names at least one sensor
        shares = {name: 1.0 / len(names) for name in names}
        return Transition(status, severity, p["last"], 1.0, shares, kind=KIND, detail=detail)

    # ------------------------------------------------------------------ drill-down

    def describe(self, state: MachineState) -> dict[str, Any]:
        p = state.ops.get(OPS_KEY)
        if p is None:
            return {}
        seen, interval, open_severity = p["header"]
        return {
            "last_seen_at": seen,
            "last_event_time": p["last"],
            "usual_interval_seconds": interval or None,
            "gaps_learned": len(p["gaps"]),
            "silent": bool(open_severity),
        }

