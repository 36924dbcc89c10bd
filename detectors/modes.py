"""Operating modes and maintenance windows: which mode a machine is in at a reading's event time,
and what that means for its models and alerts.

A machine's schedule is a list of windows `(start, until, mode)` in event time (`until`
exclusive, None: open-ended), from control messages (kept in `state.ops["modes"]`) and from
`[[modes.windows]]` in config. A reading is in the mode of the window that covers its event time
and started last (a control message beats a configured window starting at the same time); none
covering it: `production`. So "maintenance from 10:00" followed by "production from 12:00" ends
the maintenance at 12:00, and a bounded window falls back to what was in force around it.

What a mode does (`Gate`):

- `maintenance`: no learning, no scoring, no health tracking, alerts suppressed. Open alerts
  resolve on the first reading in maintenance (`Gate.resolve`); the first reading after it
  restarts every model's baseline (`Gate.rebaseline`, `after_maintenance = "rebaseline"`) so
  that the change the maintenance itself made (a replaced part) does not page.
- an operating mode of `modes.learning`: `separate` learns models of its own (entity keys
  suffixed `@mode`), `shared` learns the production models, `pause` is maintenance without the
  resolve and the rebaseline (an alert open when the pause starts stays open).
- back from a mode without learning (a `pause`, or maintenance with `after_maintenance =
  "resume"`), the machine *settles* for `settle` readings (`Gate.settling`): its models score
  and learn, but no anomaly alert starts. A machine restarting after a stop is not yet in its
  operating state (temperatures still cold, pressures building), which its models, resumed
  where they stopped, would page for; alarm-management practice calls this state-based
  suppression (ISA-18.2). After a rebaseline the models' own warm-up covers it.

Where the schedule says `production`, `[[modes.rules]]` may read the mode off the reading
itself ("idle while speed_rpm reads below 50", `mode_rules.py`): a plant's daily stops without
a message for each.

A maintenance window that lies entirely between two readings of a machine (it stopped
reporting during the work) still counts: the next reading resolves and rebaselines.
State: `state.ops["modes"] = {"v": 1, "id", "mode", "since", "at", "windows": [[start, until,
mode], ...], "settle"}` (plain data; `at`: the event time of its last reading; `settle`: readings
left to settle, absent in older state), absent for a machine that never had a window: the hot
path then costs one dict lookup.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

from anomstream.detectors.entities import MachineState
from anomstream.detectors.mode_rules import ModeRule, ModeRules

__all__ = ["DEFAULT_MODE", "MAINTENANCE", "MAX_WINDOWS", "Gate", "Modes"]

DEFAULT_MODE = "production"
MAINTENANCE = "maintenance"
PAUSE, SEPARATE, SHARED = "pause", "separate", "shared"
# Windows kept per machine; beyond it the earliest go. Ended and shadowed windows are pruned
# whenever the machine changes mode, so this only bounds a flood of future windows.
MAX_WINDOWS = 64
_CACHE = 100_000  # machines whose matching configured windows are remembered
Window = tuple[float, float | None, str]


@dataclass(frozen=True)
class Gate:
    mode: str = DEFAULT_MODE
    learn: bool = True  # models score and learn (and health codes are tracked)
    alert: bool = True  # firing alerts are published (else counted as suppressed)
    suffix: str = ""  # appended to sensor entity keys: a mode with its own models
    rebaseline: bool = False  # restart every model's baseline before this reading
    resolve: bool = False  # maintenance starts: the machine's open alerts end now
    ended: bool = False  # the first reading after maintenance: sensors may have changed
    settling: bool = False  # back from a mode without learning: models learn, no alert starts
    previous: str | None = None  # the mode this reading leaves, when it changes mode


OPEN = Gate()


class Modes:
    """The machines' mode schedules; see the module docstring.

    Examples
    --------
    >>> modes = Modes(learning={"setup": "separate"})
    >>> state = MachineState()
    >>> modes.schedule(state, "press-07", MAINTENANCE, 100.0, 200.0)
    'applied'
    >>> modes.schedule(state, "press-07", MAINTENANCE, 100.0, 200.0)
    'duplicate'
    >>> [(g.mode, g.learn, g.resolve, g.rebaseline) for g in
    ...  (modes.gate("press-07", state, t) for t in (50.0, 100.0, 150.0, 200.0))]
    [('production', True, False, False), ('maintenance', False, True, False), \
('maintenance', False, False, False), ('production', True, False, True)]
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        learning: Mapping[str, str] | None = None,
        after_maintenance: str = "rebaseline",
        windows: Sequence[tuple[str, str, float, float | None]] = (),
        settle: int = 0,
        rules: Sequence[ModeRule] = (),
    ) -> None:
        self.enabled = enabled
        self.learning = dict(learning or {})
        self.after_maintenance = after_maintenance
        if not isinstance(settle, int) or settle < 0:
            raise ValueError(f"settle must be a number of readings >= 0, got {settle!r}")
        self.settle = settle
        self.windows = tuple(windows)  # (machine pattern, mode, start, until) from config
        unknown = [r.mode for r in rules if r.mode not in self.modes or r.mode == DEFAULT_MODE]
        if unknown:
            raise ValueError(f"rule mode {unknown[0]!r}: not maintenance nor an operating mode")
        self.rules = ModeRules(rules)  # modes read off the readings (`mode_rules`)
        self._planned: dict[str, tuple[Window, ...]] = {}
        self._gates = {name: self._base_gate(name) for name in self.modes}

    @classmethod
    def from_config(cls, config: Any) -> Modes:
        return cls(
            enabled=config.enabled,
            learning=config.learning,
            after_maintenance=config.after_maintenance,
            windows=[(w.machine, w.mode, float(w.start), w.until) for w in config.windows],
            settle=config.settle,
            rules=[ModeRule(r.machine, r.sensor, r.mode, r.below, r.above) for r in config.rules],
        )

    @property
    def modes(self) -> tuple[str, ...]:
        """Every mode a machine can be in: the closed set of `machines_in_mode` labels."""
        return (DEFAULT_MODE, MAINTENANCE, *self.learning)

    def _base_gate(self, mode: str) -> Gate:
        if mode == DEFAULT_MODE:
            return OPEN
        how = PAUSE if mode == MAINTENANCE else self.learning[mode]
        if how == PAUSE:
            return Gate(mode, learn=False, alert=False)
        return Gate(mode, suffix="@" + mode if how == SEPARATE else "")

    # ------------------------------------------------------------------ per reading

    def gate(
        self, machine: str, state: MachineState, event_time: float,
        sensors: Mapping[str, float] | None = None,
    ) -> Gate:
        """The reading's mode: its schedule's, else (in `production`) what the `rules` read off
        its `sensors`."""
        if not self.enabled:
            return OPEN
        book = state.ops.get("modes")
        planned = self._planned_for(machine)
        ruled = None
        if book is None:
            if self.rules and sensors is not None:
                ruled = self.rules.mode(machine, sensors, DEFAULT_MODE)
            if not planned and ruled is None:
                return OPEN
            book = _new_book(state, machine)
        mode = _mode_at(book["windows"], planned, event_time)
        if mode == DEFAULT_MODE and self.rules and sensors is not None:
            mode = ruled or self.rules.mode(machine, sensors, book["mode"]) or DEFAULT_MODE
        gate = self._gates[mode]
        last = book["at"]
        if last is not None and event_time < last:
            return gate  # a late reading: its own mode, but it moves the machine nowhere
        book["at"] = event_time
        previous = book["mode"]
        # A maintenance that started and ended between two readings (the machine was off for
        # it). Before the first reading with a book, only a message's window can have been
        # missed, never a configured one: an old window left in the config would otherwise
        # rebaseline every machine whose state predates it.
        skipped = mode != MAINTENANCE and previous != MAINTENANCE and (
            _maintenance_between(book["windows"], (), -math.inf, event_time) if last is None
            else _maintenance_between(book["windows"], planned, last, event_time)
        )
        windows = book["windows"]
        if mode == previous and not skipped:
            if windows and windows[0][1] is not None and windows[0][1] <= event_time:
                self._tidy(book, planned, event_time)  # a window ended unnoticed
            return self._settling(book, gate)
        book["mode"], book["since"] = mode, event_time
        self._tidy(book, planned, event_time)
        ended = skipped or (previous == MAINTENANCE and mode != MAINTENANCE)
        rebaseline = ended and self.after_maintenance == "rebaseline"
        if self.settle and gate.learn and not rebaseline and (
            skipped or not self._gates.get(previous, OPEN).learn
        ):
            # Back from a stop: the models' own warm-up does not cover it (they resume), so the
            # machine gets `settle` readings to reach its operating state.
            book["settle"] = self.settle
        gate = dataclasses.replace(
            gate,
            resolve=skipped or (mode == MAINTENANCE and previous != MAINTENANCE),
            ended=ended,
            rebaseline=rebaseline,
            previous=previous if mode != previous else None,
        )
        return self._settling(book, gate)

    @staticmethod
    def _settling(book: dict[str, Any], gate: Gate) -> Gate:
        """Count one reading of a settling machine (`book["settle"]` left; absent in a book from
        before `settle` existed: none)."""
        left = book.get("settle", 0)
        if not left or not gate.learn:
            return gate
        book["settle"] = left - 1
        return dataclasses.replace(gate, settling=True)

    @staticmethod
    def _tidy(book: dict[str, Any], planned: tuple[Window, ...], t: float) -> None:
        # The book itself stays, even empty: its `at` tells a replayed message `expired`.
        book["windows"] = _prune(book["windows"], t, keep_production=bool(planned))

    def _planned_for(self, machine: str) -> tuple[Window, ...]:
        """The configured windows whose pattern matches `machine` (cached: patterns are matched
        once per machine, not per reading)."""
        if not self.windows:
            return ()
        planned = self._planned.get(machine)
        if planned is None:
            if len(self._planned) >= _CACHE:
                self._planned.clear()
            planned = self._planned[machine] = tuple(
                (start, until, mode) for pattern, mode, start, until in self.windows
                if fnmatchcase(machine, pattern)
            )
        return planned

    # ------------------------------------------------------------------ control messages

    def schedule(
        self, state: MachineState, machine: str, mode: str, start: float, until: float | None,
        now: float | None = None,
    ) -> str:
        """Record a window from a control message: `applied`, `duplicate` (already recorded,
        so replaying the control topic is harmless) or `expired` (it ended before the machine's
        last reading: those readings are processed, nothing is left to do). A window with the
        start of a recorded one replaces it (say, to give an open maintenance its end).

        The last reading's event time is known once the machine has a schedule; before, for a
        machine with readings, `now` (the clock) stands in for it: right for a live stream."""
        if mode not in self._gates:
            raise ValueError(f"unknown mode {mode!r}; known: {', '.join(self.modes)}")
        book = state.ops.get("modes")
        last = book["at"] if book is not None else None
        if last is None and state.readings and now is not None:
            last = now
        if until is not None and last is not None and until <= last:
            return "expired"
        if book is None:
            book = _new_book(state, machine)
        windows: list[list[Any]] = book["windows"]
        entry = [start, until, mode]
        starts = [w[0] for w in windows]
        i = bisect.bisect_left(starts, start)
        if i < len(windows) and windows[i][0] == start:
            if windows[i] == entry:
                return "duplicate"
            windows[i] = entry
        else:
            windows.insert(i, entry)
            del windows[:-MAX_WINDOWS]
        return "applied"

    def begin(self, state: MachineState, mode: str, at: float) -> str:
        """Put the machine in `mode` now, without waiting for a reading (a maintenance in force
        when its message arrives, its alerts resolved by the caller); returns the mode it left.
        Its first reading after the window then rebaselines as usual."""
        book = state.ops["modes"]
        previous = str(book["mode"])
        book["mode"], book["since"] = mode, at
        return previous

    def in_force(self, state: MachineState, at: float) -> str:
        """The mode the machine's schedule gives for event time `at`."""
        book = state.ops.get("modes")
        if book is None:
            return DEFAULT_MODE
        return _mode_at(book["windows"], self._planned_for(book["id"]), at)

    # ------------------------------------------------------------------ other readers

    def silence_expected(self, state: MachineState, now: float) -> bool:
        """True while the machine is in maintenance or a paused mode (at its last reading, or
        by its schedule at `now`, taken as event time): the presence check then raises no
        `silent` alert for it."""
        book = state.ops.get("modes")
        if book is None:
            return False
        quiet = (book["mode"], self.in_force(state, now))
        return any(not self._gates[m].learn for m in quiet if m in self._gates)

    @staticmethod
    def mode_of(state: MachineState) -> str:
        """The mode of the machine's last reading."""
        book = state.ops.get("modes")
        return DEFAULT_MODE if book is None else str(book["mode"])

    def describe(self, state: MachineState) -> dict[str, Any]:
        """JSON-able mode and maintenance state for `GET /machines/{id}`."""
        book = state.ops.get("modes")
        mode = self.mode_of(state)
        gate = self._gates.get(mode, OPEN)
        out: dict[str, Any] = {
            "mode": mode,
            "in_maintenance": mode == MAINTENANCE,
            "learning": "pause" if not gate.learn else ("separate" if gate.suffix else "shared"),
            "since": _iso(book["since"]) if book and book["since"] is not None else None,
            # readings left before an anomaly alert can start again (`settle`)
            "settling": book.get("settle", 0) if book else 0,
            "windows": [],
        }
        if book is not None:
            windows = [*self._planned_for(book["id"]), *map(tuple, book["windows"])]
            out["windows"] = [
                {"mode": m, "from": _iso(s), "until": _iso(u) if u is not None else None}
                for s, u, m in sorted(windows, key=lambda w: w[0])
            ]
        return out


def _new_book(state: MachineState, machine: str) -> dict[str, Any]:
    book = state.ops["modes"] = {
        "v": 1, "id": machine, "mode": DEFAULT_MODE, "since": None, "at": None, "windows": [],
    }
    return book


def _mode_at(windows: Sequence[Sequence[Any]], planned: Sequence[Window], t: float) -> str:
    """The mode of the covering window that started last; configured ones first, so a control
    message with the same start wins."""
    best: Sequence[Any] | None = None
    for group in (planned, windows):
        for w in group:
            if w[0] <= t and (w[1] is None or t < w[1]) and (best is None or w[0] >= best[0]):
                best = w
    return DEFAULT_MODE if best is None else str(best[2])


def _maintenance_between(
    windows: Sequence[Sequence[Any]], planned: Sequence[Window], after: float, upto: float
) -> bool:
    """Did a maintenance window start after one reading and end before the next?"""
    return any(
        w[2] == MAINTENANCE and after < w[0] <= upto for group in (planned, windows) for w in group
    )


def _prune(windows: list[list[Any]], t: float, *, keep_production: bool) -> list[list[Any]]:
    """Drop the windows that can cover no reading from `t` on: ended ones, and those started
    before the latest open-ended window in force (it wins from its start on, for good). That
    one too when it is `production`, which is what no window means, unless configured windows
    (not in this list) could cover what it overrides."""
    latest_open = max((w[0] for w in windows if w[1] is None and w[0] <= t), default=None)
    kept = [
        w for w in windows
        if (w[1] is None or w[1] > t) and (latest_open is None or w[0] >= latest_open)
    ]
    first = kept[0] if kept else None
    if first and not keep_production and first[0] == latest_open and first[1] is None and first[2] == DEFAULT_MODE:
        del kept[0]
    return kept


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
