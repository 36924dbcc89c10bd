"""Per-machine state: one model per sensor (created on first sight) and the alert-policy state.

The unit of state is the machine: all its sensor models and its policy state are read together
by every reading, checkpointed together (one changelog record per machine) and move together
when the machine's partition moves to another instance.

A machine may also have one machine-wide model (`detector.machine_model`, e.g. the relations
between its sensors), next to its sensor models: `MachineState.joint`, seeded from the machine id.

An entity's detector comes from the first `[[detector.templates]]` entry whose shell-style
`machine` and `sensor` patterns match, else from `[detector]`. Each entity gets its own seed
(CRC-32 of machine and sensor), so randomised detectors differ between sensors yet replay
identically.

Memory is bounded: past `max_entities` live sensor models, or for machines unseen for
`idle_ttl` seconds, the least recently seen machines are evicted. With a `codec` (signed
serialization), an evicted machine's state is kept as signed bytes and restored on its next
reading, so eviction costs a few hundred bytes per machine instead of its live models; without
one, eviction forgets.

Machines that are not live (restored from the changelog, not yet read; or evicted) still have to
be looked at by timers (a silent machine reads nothing). Unpickling them all at every look would
cost far more than the look, so each operations feature may keep a small plain summary of its
state under `MachineState.ops[feature]["header"]`: the codec signs it into a header readable
without unpickling, and the store keeps the summaries of its cold machines in an index
(`cold_headers`), filled at install and eviction, emptied at thaw and release.
"""

from __future__ import annotations

import logging
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Any, Protocol

from river.base import AnomalyDetector

from anomstream.detectors.policy import PolicyState
from anomstream.detectors.registry import build_detector

__all__ = ["MACHINE_WIDE", "Codec", "Entity", "MachineState", "ModelStore", "TemplateRule"]

MACHINE_WIDE = "*"  # the sensor key of the single model in `machine` entity mode
log = logging.getLogger(__name__)


class Codec(Protocol):
    def dumps(self, obj: Any, header: Mapping[str, Any] | None = None) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...

    def header(self, data: bytes) -> dict[str, Any]: ...


class Entity:
    """One sensor's model and how many readings it has learned."""

    __slots__ = ("_fused", "detector", "learned", "model")

    def __init__(self, model: AnomalyDetector, detector: str, learned: int = 0) -> None:
        self.model = model
        self.learned = learned
        self.detector = detector  # registry name, reported in alerts
        # Detectors may offer `score_learn_one` (score, then learn, in one pass); any other
        # River detector gets the two calls.
        self._fused = getattr(model, "score_learn_one", None)

    def score_learn(self, x: dict) -> float:
        """Score `x` with what the model knew before it, then learn it."""
        if self._fused is not None:
            return float(self._fused(x))
        score = float(self.model.score_one(x))
        self.model.learn_one(x)
        return score

    def __getstate__(self) -> tuple:
        return (self.model, self.detector, self.learned)

    def __setstate__(self, state: tuple) -> None:
        self.__init__(*state)  # type: ignore[misc]


class MachineState:
    """Everything anomstream remembers about one machine."""

    __slots__ = (
        "dirty", "entities", "joint", "last_seen", "offset", "ops", "partition", "policy",
        "readings", "source", "topic",
    )

    def __init__(self) -> None:
        self.entities: dict[str, Entity] = {}
        self.joint: Entity | None = None  # the machine-wide model, if configured
        self.policy = PolicyState()
        self.readings = 0  # readings this state includes, over the machine's whole history
        # Input position of the last reading included: a replay after a crash skips readings
        # at or before it, so state is never learned twice.
        self.topic = ""
        self.offset = -1
        # Input partition of the reading at `offset`: offsets of two partitions are not
        # comparable. -1 in state written before it was recorded: compare offsets alone.
        self.source = -1
        self.partition = -1  # input partition its readings arrive on; its changelog partition
        self.last_seen = 0.0
        self.dirty = False  # changed since its last checkpoint
        # The operations features' state, one entry per feature ("health", "presence", "modes",
        # "feedback", "alerts"): plain data (dicts, lists, numbers, strings) with a "v" version
        # key, never class instances, so any later release can read it.
        self.ops: dict[str, Any] = {}

    def covers(self, topic: str, partition: int, offset: int) -> bool:
        """True if the reading at `topic`/`partition`/`offset` is already part of this state.

        Only a reading of the same partition as the last included one can be told a replay.
        A machine whose readings arrive on two partitions (keyless records, a key that is not
        the machine id) is then learned at least once, never skipped unseen; after a crash, a
        few readings of the other partition may be learned twice.
        """
        return offset <= self.offset and topic == self.topic and self.source in (partition, -1)

    def include(self, topic: str, partition: int, offset: int) -> None:
        self.topic, self.source, self.offset = topic, partition, offset
        self.readings += 1
        self.dirty = True

    @property
    def models(self) -> int:
        """Live models of this machine: its sensor models and its machine-wide model."""
        return len(self.entities) + (self.joint is not None)

    def __getstate__(self) -> tuple:
        return (
            self.entities, self.policy, self.readings, self.topic, self.offset, self.source, self.joint,
            self.ops,
        )

    def __setstate__(self, state: tuple) -> None:
        self.entities, self.policy, self.readings, self.topic, self.offset = state[:5]
        # added later, older checkpoints lack them: no source partition, no machine-wide model
        self.source = state[5] if len(state) > 5 else -1
        self.joint = state[6] if len(state) > 6 else None
        self.ops = state[7] if len(state) > 7 else {}
        self.partition, self.last_seen, self.dirty = -1, 0.0, False


class TemplateRule:
    """`detector` with `params` for entities matching `machine` / `sensor` patterns."""

    __slots__ = ("detector", "machine", "params", "sensor")

    def __init__(self, machine: str, sensor: str, detector: str, params: Mapping[str, Any]) -> None:
        self.machine = machine
        self.sensor = sensor
        self.detector = detector
        self.params = dict(params)

    def matches(self, machine: str, sensor: str) -> bool:
        return fnmatchcase(machine, self.machine) and fnmatchcase(sensor, self.sensor)


class ModelStore:
    """Live machines in LRU order, evicted machines as signed bytes, and the changelog interface."""

    def __init__(
        self,
        *,
        default: TemplateRule,
        rules: Sequence[TemplateRule] = (),
        joint: TemplateRule | None = None,
        max_entities: int = 100_000,
        idle_ttl: float = 0.0,
        codec: Codec | None = None,
        factory: Callable[[str, Mapping[str, Any], int], AnomalyDetector] | None = None,
        on_thaw: Callable[[str, MachineState], None] | None = None,
    ) -> None:
        self.default = default
        self.rules = tuple(rules)
        self.joint = joint  # the machine-wide model's detector, or None
        self.max_entities = max_entities
        self.idle_ttl = idle_ttl
        self.codec = codec
        self.on_thaw = on_thaw  # told about every machine restored from its signed state
        self._factory = factory or (lambda name, params, seed: build_detector(name, params, seed=seed))
        self._live: OrderedDict[str, MachineState] = OrderedDict()
        self._cold: dict[str, tuple[int, bytes]] = {}  # machine -> (partition, signed state)
        self._unwritten: set[str] = set()  # cold machines whose bytes are newer than the changelog
        # feature -> {cold machine -> its ops[feature]["header"]}: read by timers (see module doc)
        self._headers: dict[str, dict[str, Any]] = {}
        self._entity_count = 0
        self.created = self.evicted = self.restored = self.rejected = 0

    @classmethod
    def from_config(cls, detector_config: Any, **kwargs: Any) -> ModelStore:
        """Build from a `DetectorConfig`; validates every template by building it once."""
        default = TemplateRule("*", "*", detector_config.name, detector_config.params)
        rules = [TemplateRule(t.machine, t.sensor, t.name, t.params) for t in detector_config.templates]
        joint = None
        if detector_config.machine_model and detector_config.entity == "sensor":
            joint = TemplateRule("*", MACHINE_WIDE, detector_config.machine_model, detector_config.machine_params)
        store = cls(
            default=default, rules=rules, joint=joint, max_entities=detector_config.max_entities, **kwargs
        )
        for rule in (default, *rules, *([joint] if joint else [])):
            store._factory(rule.detector, rule.params, 0)  # fail at start-up, not on first reading
        return store

    def __len__(self) -> int:
        """Live sensor models."""
        return self._entity_count

    @property
    def machines(self) -> int:
        return len(self._live)

    def items(self) -> list[tuple[tuple[str, str], Entity]]:
        return [((m, s), e) for m, st in self._live.items() for s, e in st.entities.items()]

    def peek(self, machine: str, sensor: str) -> Entity | None:
        """The entity if live, without creating it or touching its recency."""
        state = self._live.get(machine)
        return state.entities.get(sensor) if state is not None else None

    # ------------------------------------------------------------------ the hot path

    def machine(self, machine: str, partition: int, now: float) -> MachineState:
        """The machine's state: live, restored from its signed bytes, or new."""
        live = self._live
        state = live.get(machine)
        if state is None:
            state = self._admit(machine, self._thaw(machine) or MachineState())
        else:
            live.move_to_end(machine)
        state.partition = partition
        state.last_seen = now
        return state

    def entity(
        self, state: MachineState, machine: str, sensor: str, suffix: str = "",
        rule: TemplateRule | None = None,
    ) -> Entity:
        """The model of `sensor` (created on first use, from its template or `rule`); with a
        `suffix`, the one of an operating mode that learns on its own, kept as `sensor@mode`."""
        key = sensor + suffix if suffix else sensor
        entity = state.entities.get(key)
        if entity is None:
            entity = state.entities[key] = self._create(machine, sensor, rule)
            self._entity_count += 1
            if self._entity_count > self.max_entities:
                self._evict_lru(keep=machine)
        return entity

    def joint_entity(self, state: MachineState, machine: str) -> Entity | None:
        """The machine-wide model, created on first use; None when none is configured."""
        entity = state.joint
        if entity is None and self.joint is not None:
            entity = state.joint = self._create(machine, MACHINE_WIDE, self.joint)
            self._entity_count += 1
            if self._entity_count > self.max_entities:
                self._evict_lru(keep=machine)
        return entity

    def _create(self, machine: str, sensor: str, rule: TemplateRule | None = None) -> Entity:
        if rule is None:
            rule = next((r for r in self.rules if r.matches(machine, sensor)), self.default)
        seed = zlib.crc32(f"{machine}\x1f{sensor}".encode())
        self.created += 1
        return Entity(self._factory(rule.detector, rule.params, seed), rule.detector)

    def find(self, machine: str) -> MachineState | None:
        """The machine's state if this instance holds it (live, or thawed from its signed
        bytes), without creating one or changing the partition its readings arrive on; for
        messages about a machine that come from another topic (feedback, control)."""
        state = self._live.get(machine)
        if state is not None:
            return state
        partition = self._cold.get(machine, (-1, b""))[0]
        state = self._thaw(machine)
        if state is None:
            return None
        state.partition = partition
        return self._admit(machine, state)

    def _admit(self, machine: str, state: MachineState) -> MachineState:
        """Make `state` live (most recently seen), counting its models against the cap."""
        self._live[machine] = state
        self._entity_count += state.models
        if self._entity_count > self.max_entities:
            self._evict_lru(keep=machine)
        return state

    def reset_sensors(self, state: MachineState, sensors: Iterable[str] | None = None) -> list[str]:
        """Restart the baseline of `sensors` (None: every sensor) of a machine: their models are
        dropped and created afresh, with a new warm-up, on their next reading. The machine-wide
        model is reset too, since it learned the old relations of those sensors. Returns the
        sensors reset."""
        names = list(state.entities) if sensors is None else [s for s in sensors if s in state.entities]
        for name in names:
            del state.entities[name]
            self._entity_count -= 1
        if state.joint is not None and (names or sensors is None):
            state.joint = None
            self._entity_count -= 1
        state.dirty = True
        return names

    def live_states(self) -> list[tuple[str, MachineState]]:
        """Live machines, least recently seen first (a copy: safe to change the store while
        going through it)."""
        return list(self._live.items())

    def cold_headers(self, feature: str) -> Mapping[str, tuple[int, Any]]:
        """machine -> (partition, header) of every machine held here but not live whose
        `ops[feature]` had a header, read without unpickling. A read-only view, not a copy
        (100,000 machines): do not change the store while going through it."""
        return MappingProxyType(self._headers.get(feature, {}))

    # ------------------------------------------------------------------ eviction

    def evict_idle(self, now: float) -> int:
        """Evict machines unseen for `idle_ttl` seconds (oldest first); returns how many."""
        if self.idle_ttl <= 0:
            return 0
        count = 0
        while self._live:
            machine, state = next(iter(self._live.items()))
            if now - state.last_seen < self.idle_ttl:
                break
            self._evict(machine)
            count += 1
        return count

    def _evict_lru(self, keep: str) -> None:
        while self._entity_count > self.max_entities and len(self._live) > 1:
            machine = next(iter(self._live))
            if machine == keep:  # never the machine being scored right now
                self._live.move_to_end(machine)
                continue
            self._evict(machine)

    def _evict(self, machine: str) -> None:
        state = self._live.pop(machine)
        self._entity_count -= state.models
        self.evicted += 1
        if self.codec is not None:
            header = _header(state)
            self._cold[machine] = (state.partition, self.codec.dumps(state, header))
            self._index(machine, state.partition, header)
            if state.dirty:
                self._unwritten.add(machine)

    def _index(self, machine: str, partition: int, header: Mapping[str, Any]) -> None:
        for feature, summary in header.items():
            # A list from JSON is kept as a tuple: 100,000 cold machines stay a few MB.
            self._headers.setdefault(feature, {})[machine] = (
                partition, tuple(summary) if isinstance(summary, list) else summary
            )

    def _unindex(self, machine: str) -> None:
        for index in self._headers.values():
            index.pop(machine, None)

    def _thaw(self, machine: str) -> MachineState | None:
        cold = self._cold.pop(machine, None)
        if cold is None or self.codec is None:
            return None
        self._unwritten.discard(machine)
        self._unindex(machine)
        try:
            state = self.codec.loads(cold[1])
        except Exception as exc:  # noqa: BLE001 - StateRejected, or a model that no longer unpickles
            self.rejected += 1
            log.warning("state of machine %r rejected (%s): starting fresh", machine, exc)
            return None
        self.restored += 1
        if self.on_thaw is not None:
            self.on_thaw(machine, state)
        log.debug("restored machine %r: %d readings up to %s@%d", machine, state.readings, state.topic, state.offset)
        return state

    # ------------------------------------------------------------------ checkpoints

    def take_changes(self, partitions: Iterable[int] | None = None) -> list[tuple[str, int, bytes]]:
        """Signed state of every machine changed since its last checkpoint, as
        (machine, partition, bytes); marks them clean. `partitions` limits the selection."""
        assert self.codec is not None, "checkpoints need a codec"
        wanted = None if partitions is None else set(partitions)
        out = []
        for machine, state in self._live.items():
            if state.dirty and (wanted is None or state.partition in wanted):
                out.append((machine, state.partition, self.codec.dumps(state, _header(state))))
                state.dirty = False
        for machine in list(self._unwritten):
            partition, data = self._cold[machine]
            if wanted is None or partition in wanted:
                out.append((machine, partition, data))
                self._unwritten.discard(machine)
        return out

    def install(self, machine: str, partition: int, data: bytes) -> None:
        """Restore: a machine's signed state from the changelog, thawed on its next reading."""
        if machine in self._live:
            return  # already live here: in memory is at least as new as the changelog
        self._cold[machine] = (partition, data)
        self._unindex(machine)  # an older record of the machine read earlier in this restore
        if self.codec is None:
            return
        try:
            header = self.codec.header(data)
        except Exception:  # noqa: BLE001 - StateRejected: refused (and logged) again at thaw
            return
        self._index(machine, partition, header)

    def drop_partitions(self, partitions: Iterable[int]) -> list[tuple[str, MachineState]]:
        """Forget machines of partitions this instance no longer owns (already checkpointed);
        returns the live ones dropped."""
        gone = set(partitions)
        dropped = [(m, st) for m, st in self._live.items() if st.partition in gone]
        for machine, state in dropped:
            del self._live[machine]
            self._entity_count -= state.models
        for machine in [m for m, (p, _) in self._cold.items() if p in gone]:
            del self._cold[machine]
            self._unwritten.discard(machine)
            self._unindex(machine)
        return dropped


def _header(state: MachineState) -> dict[str, Any]:
    """The plain summaries its operations features keep for timers (see the module docstring)."""
    return {name: entry["header"] for name, entry in state.ops.items() if "header" in entry}
