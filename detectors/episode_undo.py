"""Undo what a machine's models learned during an anomaly episode (operator `false_positive`).

Why exact undo, and how. The models are deterministic functions of the readings they learned,
in order (seeds are fixed per entity). So "the models as if the episode had never been learned"
is: the models as they were before the episode, then the readings learned after it, learned
again. Per live machine this module keeps

- a *base*: the pickled models (sensor models and machine-wide model) at some reading;
- the *log*: every reading learned since the base (the sensor values as learned, after health
  exclusions, and the mode suffix), in order;
- the *episodes* in the log: where each anomaly run that fired starts and ends.

Undoing an episode restores the base and learns the log again, minus that episode's readings.

The episode's first reading is only known once it has been learned (its score starts the run),
so the base must be older than any reading: it is taken every `REBASE` readings while no
episode is tracked (a pickle, ~0.3 ms for a five-sensor machine of the default detectors: ~3 %
of processing those readings, measured). While episodes are tracked the log grows; an episode
stays undoable for `window` readings after it ends, and an episode plus its tail longer than
`2 * window` is given up (`too_late`).

Kept in memory only, never checkpointed: the base is a second copy of the machine's models (about
5 KB per sensor), and a changelog record must stay under 1 MB. After a restart or a rebalance a
machine starts a new base, and feedback on an episode from before says `no_snapshot`.

If the models were restarted in between (a maintenance rebaseline), replaying the log would not
give the current models minus the episode: a restart of the machine-wide model (or, without
one, of the first sensor model) is noticed on the next reading and starts a new base; any other
is caught at undo time, where the learned counts of the rebuilt models must match the current
ones minus the episode's, else the models are left untouched (`no_snapshot`).
"""

from __future__ import annotations

import pickle
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from anomstream.detectors.entities import Entity, MachineState, ModelStore
from anomstream.detectors.policy import FIRING, PENDING, Transition

__all__ = ["REBASE", "EpisodeUndo", "Relearn"]

REBASE = 64  # readings between two bases while no episode is tracked: CPU vs log length
LOST = 16  # episodes given up, remembered per machine to tell `too_late` from `no_snapshot`
# relearn(state, machine, sensors, suffix): learn one reading exactly as the pipeline did
Relearn = Callable[[MachineState, str, dict[str, float], str], None]
Models = tuple[dict[str, Entity], Entity | None]
# A logged reading: sensor names (one tuple shared by consecutive readings with the same
# sensors), their values as learned, the mode suffix. ~150 bytes, half a dict of floats.
Logged = tuple[tuple[str, ...], "array[float]", str]


@dataclass
class _Episode:
    started_at: float  # the policy's `started_at`: what ties an alert to its readings
    start: int  # log index of its first reading
    end: int | None = None  # log index after its last reading; None while it runs
    fired: bool = False  # a pending run that never fired is no episode


class _Track:
    """One machine's base, log and episodes."""

    __slots__ = ("base", "current", "episodes", "log", "lost", "probe", "run", "state")

    def __init__(self, state: MachineState) -> None:
        self.state = state  # identity: a machine evicted and thawed again is a new state
        self.probe = _probe(state)
        self.base = _dumps(state)
        self.log: list[Logged] = []
        self.episodes: list[_Episode] = []
        self.current: _Episode | None = None  # the tracked episode in progress
        # started_at of the run in progress at the last reading, tracked or not: a run already
        # under way when the track began cannot be undone, and must not look like a new one
        policy = state.policy
        self.run: float | None = policy.started_at if policy.phase in (PENDING, FIRING) else None
        self.lost: list[float] = []

    def rebase(self) -> None:
        self.base = _dumps(self.state)
        self.log = []

    def give_up(self, episodes: Sequence[_Episode]) -> None:
        self.lost += [e.started_at for e in episodes]
        del self.lost[:-LOST]


class EpisodeUndo:
    """The undo logs of the live machines of one pipeline."""

    def __init__(
        self, models: ModelStore, relearn: Relearn, *, window: int, machine_mode: bool = False
    ) -> None:
        self.models = models
        self.relearn = relearn
        self.window = window  # 0: no undo, nothing kept
        self.machine_mode = machine_mode  # one model per machine: one learned count per reading
        self._tracks: dict[str, _Track] = {}

    def __len__(self) -> int:
        return len(self._tracks)

    def learned(
        self, state: MachineState, machine: str, sensors: dict[str, float], suffix: str,
        transition: Transition | None,
    ) -> None:
        """After every learned reading (and its policy step): log it, follow the episodes."""
        if self.window <= 0:
            return
        track = self._tracks.get(machine)
        if track is None or track.state is not state or track.probe is not _probe(state):
            # new here, or its models were restarted (a rebaseline): start from what it has now
            self._tracks[machine] = _Track(state)  # its base already holds this reading
            # A track holds its state: evicted machines' tracks must go, in O(live) every
            # 64 + live/16 new tracks (a few % of the states at most, amortised O(1)).
            if len(self._tracks) > self.models.machines + 64 + self.models.machines // 16:
                self._prune()
            return
        log = track.log
        names = tuple(sensors)
        if log and log[-1][0] == names:
            names = log[-1][0]
        log.append((names, array("d", sensors.values()), suffix))
        n = len(log)
        policy = state.policy
        run = policy.started_at if policy.phase in (PENDING, FIRING) else None
        episode = track.current
        if episode is not None and run != episode.started_at:
            if not episode.fired:
                track.episodes.remove(episode)
            else:  # resolved by the policy on this reading, or from outside before it
                resolved_here = transition is not None and transition.status == "resolved"
                episode.end = n if resolved_here else n - 1
            episode = track.current = None
        if run is not None and run != track.run:  # a run starts on this very reading
            episode = track.current = _Episode(run, n - 1)
            track.episodes.append(episode)
        track.run = run
        if episode is not None and policy.phase == FIRING:
            episode.fired = True
        self._expire(track, n)

    def _expire(self, track: _Track, n: int) -> None:
        window = self.window
        alive = [e for e in track.episodes if e.end is None or n - e.end <= window]
        if len(alive) < len(track.episodes):
            track.give_up([e for e in track.episodes if e not in alive])
            track.episodes = alive
        if not alive:
            if n >= REBASE:
                track.rebase()
        elif n > REBASE + 2 * window:  # a run that never ends, or episodes back to back
            track.give_up(alive)
            track.episodes, track.current = [], None
            track.rebase()

    def undo(self, state: MachineState, machine: str, started_at: float) -> str:
        """Make the machine's models as if the episode begun at `started_at` had never been
        learned. Returns `applied`, `too_late` (given up: too long ago or too long) or
        `no_snapshot` (not tracked here: from before a restart, or the models restarted)."""
        track = self._tracks.get(machine)
        if track is None or track.state is not state or track.probe is not _probe(state):
            return "no_snapshot"
        episode = next((e for e in track.episodes if e.started_at == started_at), None)
        if episode is None:
            return "too_late" if started_at in track.lost else "no_snapshot"
        log = track.log
        end = len(log) if episode.end is None else episode.end
        kept = log[: episode.start] + log[end:]
        expected = _learned(state) - sum(self._per_reading(n) for n, _, _ in log[episode.start : end])
        current: Models = (dict(state.entities), state.joint)
        self._install(state, machine, pickle.loads(track.base))
        for names, values, suffix in kept:
            self.relearn(state, machine, dict(zip(names, values)), suffix)
        if _learned(state) != expected:  # restarted models since the base: replay is not them
            self._install(state, machine, current)
            self.forget(machine)
            return "no_snapshot"
        removed = end - episode.start
        track.log, track.probe = kept, _probe(state)
        track.episodes.remove(episode)
        for other in track.episodes:  # episodes never overlap: later ones move back
            if other.start >= end:
                other.start -= removed
                other.end = None if other.end is None else other.end - removed
        if track.current is episode:
            track.current, track.run = None, None
        return "applied"

    def forget(self, machine: str) -> None:
        """Drop a machine's log (its models were reset: the base no longer leads to them)."""
        self._tracks.pop(machine, None)

    def _per_reading(self, names: tuple[str, ...]) -> int:
        """Learned counts one reading adds: one per sensor model plus the machine-wide model."""
        if self.machine_mode:
            return 1
        return len(names) + (self.models.joint is not None)

    def _install(self, state: MachineState, machine: str, models: Models) -> None:
        """Put `models` in place of the machine's, through the store so its model count holds."""
        entities, joint = models
        store = self.models
        created = store.created
        store.reset_sensors(state)
        for name, entity in entities.items():
            store.entity(state, machine, name)  # counted in the store, then replaced
            state.entities[name] = entity
        if joint is not None and store.joint_entity(state, machine) is not None:
            state.joint = joint
        store.created = created  # the same models back, not new ones
        state.dirty = True

    def _prune(self) -> None:
        """Drop the logs of machines no longer live (evicted, moved to another instance)."""
        live = dict(self.models.live_states())
        self._tracks = {m: t for m, t in self._tracks.items() if live.get(m) is t.state}

    def describe(self, machine: str, state: MachineState) -> dict[str, Any]:
        track = self._tracks.get(machine)
        if track is None or track.state is not state:
            return {"undo_log": 0, "undoable_episodes": []}
        return {"undo_log": len(track.log), "undoable_episodes": [e.started_at for e in track.episodes]}


def _dumps(state: MachineState) -> bytes:
    # In memory only, never read from outside the process: plain pickle is safe here.
    return pickle.dumps((state.entities, state.joint), protocol=pickle.HIGHEST_PROTOCOL)


def _probe(state: MachineState) -> Entity | None:
    """An object that a restart of the machine's models replaces: the machine-wide model (reset
    with any sensor), else the first sensor model. Compared by identity on every reading."""
    if state.joint is not None:
        return state.joint
    return next(iter(state.entities.values()), None)


def _learned(state: MachineState) -> int:
    total = sum(e.learned for e in state.entities.values())
    return total + (state.joint.learned if state.joint is not None else 0)
