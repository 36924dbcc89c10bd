"""Per-entity models: created on first sight from a config template, capped in number.

An entity is a (machine, sensor) pair in `sensor` mode, or (machine, "*") in `machine` mode.
Its detector comes from the first `[[detector.templates]]` entry whose shell-style `machine` and
`sensor` patterns match, else from `[detector]` itself. Each entity gets its own seed (CRC-32 of
its key), so randomised detectors differ between sensors yet replay identically.

The store is an insertion-ordered dict used as an LRU: a hit moves the entity to the end, and
past `max_entities` the least recently seen entity is dropped (counted by the caller).
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from river.base import AnomalyDetector

from detectors.registry import build_detector

__all__ = ["Entity", "ModelStore", "TemplateRule", "MACHINE_WIDE"]

MACHINE_WIDE = "*"  # the sensor part of an entity key in machine mode


class Entity:
    """One model and how many readings it has learned."""

    __slots__ = ("model", "learned", "detector", "_fused")

    def __init__(self, model: AnomalyDetector, detector: str) -> None:
        self.model = model
        self.learned = 0
        self.detector = detector  # registry name, reported in alerts
        # Detectors may offer `score_learn_one` (score, then learn, in one pass); any other River
        # detector gets the two calls.
        self._fused = getattr(model, "score_learn_one", None)

    def score_learn(self, x: dict) -> float:
        """Score `x` with what the model knew before it, then learn it."""
        if self._fused is not None:
            return float(self._fused(x))
        score = float(self.model.score_one(x))
        self.model.learn_one(x)
        return score


class TemplateRule:
    """`detector` with `params` for entities matching `machine` / `sensor` patterns."""

    __slots__ = ("machine", "sensor", "detector", "params")

    def __init__(self, machine: str, sensor: str, detector: str, params: Mapping[str, Any]) -> None:
        self.machine = machine
        self.sensor = sensor
        self.detector = detector
        self.params = dict(params)

    def matches(self, machine: str, sensor: str) -> bool:
        return fnmatchcase(machine, self.machine) and fnmatchcase(sensor, self.sensor)


class ModelStore:
    """Lazily created, LRU-capped detector models keyed by (machine, sensor)."""

    def __init__(
        self,
        *,
        default: TemplateRule,
        rules: Sequence[TemplateRule] = (),
        max_entities: int = 100_000,
        on_evict: Callable[[tuple[str, str], Entity], None] | None = None,
        factory: Callable[[str, Mapping[str, Any], int], AnomalyDetector] | None = None,
    ) -> None:
        self.default = default
        self.rules = tuple(rules)
        self.max_entities = max_entities
        self.on_evict = on_evict
        self._factory = factory or (lambda name, params, seed: build_detector(name, params, seed=seed))
        self._entities: OrderedDict[tuple[str, str], Entity] = OrderedDict()
        self.created = 0
        self.evicted = 0

    @classmethod
    def from_config(cls, detector_config: Any, **kwargs: Any) -> ModelStore:
        """Build from a `DetectorConfig`; validates every template by building it once."""
        default = TemplateRule("*", "*", detector_config.name, detector_config.params)
        rules = [TemplateRule(t.machine, t.sensor, t.name, t.params) for t in detector_config.templates]
        store = cls(default=default, rules=rules, max_entities=detector_config.max_entities, **kwargs)
        for rule in (default, *rules):
            store._factory(rule.detector, rule.params, 0)  # fail at start-up, not on first reading
        return store

    def __len__(self) -> int:
        return len(self._entities)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._entities

    def items(self) -> list[tuple[tuple[str, str], Entity]]:
        return list(self._entities.items())

    def peek(self, machine: str, sensor: str) -> Entity | None:
        """The entity if present, without creating it or touching its recency."""
        return self._entities.get((machine, sensor))

    def get(self, machine: str, sensor: str) -> Entity:
        """The entity's model, created on first sight; marks it most recently seen."""
        key = (machine, sensor)
        entities = self._entities
        entity = entities.get(key)
        if entity is not None:
            entities.move_to_end(key)
            return entity
        entity = self._create(machine, sensor)
        entities[key] = entity
        if len(entities) > self.max_entities:
            old_key, old = entities.popitem(last=False)
            self.evicted += 1
            if self.on_evict is not None:
                self.on_evict(old_key, old)
        return entity

    def _create(self, machine: str, sensor: str) -> Entity:
        rule = next((r for r in self.rules if r.matches(machine, sensor)), self.default)
        seed = zlib.crc32(f"{machine}\x1f{sensor}".encode("utf-8"))
        self.created += 1
        return Entity(self._factory(rule.detector, rule.params, seed), rule.detector)
