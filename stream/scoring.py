"""Scoring one reading with a machine's models: every model scores it with what it knew
before it, then learns it.

A machine has one model per sensor (or, with `detector.entity = "machine"`, one for the whole
machine) and optionally one machine-wide model of the relations between its sensors; an
operating mode that learns on its own has its own set (entity keys with the mode's suffix).
Models in warm-up only learn. The per-sensor scores become machine-level tail probabilities
(`per_machine`), so the policy's threshold means "1 in N readings of this machine" whatever
its number of sensors.
"""

from __future__ import annotations

from typing import Any, cast

from anomstream.detectors.entities import MACHINE_WIDE, Entity, MachineState, ModelStore

__all__ = ["Joint", "MachineScorer", "per_machine"]

Joint = tuple[float, dict[str, float]]  # a machine-wide model's score and per-sensor contributions


class MachineScorer:
    """Scores then learns the models of `models`, counting the sensor values scored."""

    def __init__(self, models: ModelStore, *, warmup: int, machine_mode: bool) -> None:
        self.models = models
        self.warmup = warmup
        self.machine_mode = machine_mode  # one model per machine instead of one per sensor
        self.scored = 0  # sensor values scored so far (after warm-up)

    def score_and_learn(
        self, state: MachineState, machine: str, sensors: dict[str, float], suffix: str = ""
    ) -> tuple[float, dict[str, float], Joint | None, bool]:
        """Score every model of the machine before learning it.

        Returns the machine score (the highest of its models' scores), the per-sensor scores,
        the machine-wide model's (score, contributions) and whether any model is past warm-up.
        `suffix` selects the models of an operating mode that learns on its own.
        """
        warmup = self.warmup
        entity_of = self.models.entity
        if self.machine_mode:
            entity = entity_of(state, machine, MACHINE_WIDE, suffix)
            joint = self._score_joint(entity, sensors, warmup)
            if joint is not None:
                self.scored += 1
                return joint[0], {}, joint, True
            return 0.0, {}, None, False
        sensor_scores: dict[str, float] = {}
        best = 0.0
        for sensor, value in sensors.items():
            entity = entity_of(state, machine, sensor, suffix)
            x: dict[Any, Any] = {"value": value}
            if entity.learned >= warmup:
                s = entity.score_learn(x)
                sensor_scores[sensor] = s
                best = max(best, s)
            else:
                entity.model.learn_one(x)
            entity.learned += 1
        scored = len(sensor_scores)
        self.scored += scored
        if scored > 1:
            best, sensor_scores = per_machine(sensor_scores)
        joint = None
        if not suffix:
            entity = self.models.joint_entity(state, machine)
        elif self.models.joint is not None:  # a separately learning mode's own relations
            entity = entity_of(state, machine, MACHINE_WIDE, suffix, self.models.joint)
        else:
            entity = None
        if entity is not None:
            joint = self._score_joint(entity, sensors, warmup)
            if joint is not None and joint[0] > best:
                best = joint[0]
        # A machine alerts only on models past warm-up; it is "warm" once any model is.
        return best, sensor_scores, joint, bool(sensor_scores) or joint is not None

    def relearn(self, state: MachineState, machine: str, sensors: dict[str, float], suffix: str) -> None:
        """Learn a reading again exactly as the pipeline learned it (undoing a false positive's
        episode replays the readings around it); not counted as scored again."""
        scored = self.scored
        self.score_and_learn(state, machine, sensors, suffix)
        self.scored = scored

    @staticmethod
    def _score_joint(entity: Entity, sensors: dict[str, float], warmup: int) -> Joint | None:
        """Score, then learn, the whole reading with a machine-wide model; None in warm-up.

        The contributions come from the model (`last_contributions`, as `RelationModel`
        reports them); a River model without them implicates every sensor equally.
        """
        x = cast(dict[Any, Any], sensors)
        warm = entity.learned >= warmup
        entity.learned += 1
        if not warm:
            entity.model.learn_one(x)
            return None
        score = entity.score_learn(x)
        contributions = getattr(entity.model, "last_contributions", None)
        if contributions is None:
            contributions = {name: 1.0 / len(sensors) for name in sensors}
        return score, contributions


def per_machine(sensor_scores: dict[str, float]) -> tuple[float, dict[str, float]]:
    """Per-sensor tail probabilities as tail probabilities of the machine (Bonferroni).

    The policy's threshold means "as rare as 1 in N readings of this machine". A machine with k
    sensors gets k chances per reading for one of them to look that rare by chance, so each
    sensor's tail `1 - s` counts k times: `1 - k (1 - s)`, floored at 0. One sensor: unchanged.

    >>> per_machine({"a": 0.99999, "b": 0.5})
    (0.99998, {'a': 0.99998, 'b': 0.0})
    """
    k = len(sensor_scores)
    corrected = {}
    for sensor, s in sensor_scores.items():
        c = 1.0 - k * (1.0 - s)
        corrected[sensor] = round(c, 12) if c > 0.0 else 0.0
    return max(corrected.values()), corrected
