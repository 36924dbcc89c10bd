"""Drive one detector over one series as the service does, and step the alert policy over it.

The benchmarks' one copy of the pipeline's per-sensor loop (`anomstream.stream.pipeline`): the
first `warmup` readings are learned only (score 0), the rest are scored *before* they are
learned (`score_learn_one`), one `{"value": v}` dict per reading; a missing reading (NaN) is
neither scored nor learned. The policy is stepped on every row, as the pipeline steps it on every
reading of the machine (score 0 during warm-up), with the series as the machine's only sensor and
no machine-wide model (a lone sensor: the machine model scores 0 for it).

Imported by the scripts of `bench/` as `nab_drive` (they run with `bench/` on `sys.path`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from river.base import AnomalyDetector

from anomstream.detectors.policy import FIRING, AlertPolicy, PolicyState

__all__ = ["AlertTrace", "drive", "step_policy"]


def drive(values: Sequence[float] | np.ndarray, model: AnomalyDetector, warmup: int) -> np.ndarray:
    """Each reading's score in [0, 1] (0 during warm-up and for missing readings)."""
    series = values.tolist() if isinstance(values, np.ndarray) else list(values)
    out = np.zeros(len(series))
    score_learn, learn_one = model.score_learn_one, model.learn_one  # hot loop
    learned = 0
    for i, v in enumerate(series):
        if math.isnan(v):
            continue
        x: dict = {"value": v}
        if learned >= warmup:
            out[i] = score_learn(x)
        else:
            learn_one(x)
        learned += 1
    return np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0)


@dataclass(frozen=True)
class AlertTrace:
    """What the policy did over one series."""

    fired: list[int]  # rows of the firing transitions
    resolved: list[int]  # rows of the resolved transitions
    inside: np.ndarray  # bool per row: an alert is open (firing row included, resolving not)


def step_policy(scores: np.ndarray, policy: AlertPolicy) -> AlertTrace:
    """Step `policy` over `scores`, the series being a one-sensor machine."""
    state = PolicyState()
    fired, resolved = [], []
    inside = np.zeros(len(scores), dtype=bool)
    step = policy.step
    for i, score in enumerate(scores.tolist()):
        t = step(state, score, float(i), {"value": score})
        if t is not None:
            (fired if t.status == "firing" else resolved).append(i)
        inside[i] = state.phase == FIRING
    return AlertTrace(fired, resolved, inside)
