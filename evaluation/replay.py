"""Offline replay: run the service's detector over CSV series and write NAB-format scores.

The models come from the same place the service gets them — `anomstream.stream.config.Config` and
`anomstream.detectors.entities.ModelStore` (templates, per-entity seeds, `anomstream.detectors.registry`) — and are
driven the same way as `anomstream.stream.pipeline`: one model per sensor (here: per value column, the file
being the machine), each reading passed as ``{"value": v}``, the first `detector.warmup` readings
learned without a score, then scored *before* they are learned (`Entity.score_learn`). A row's
score is the highest of its columns' scores, as the service's machine score is the highest of
its sensor scores.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anomstream.detectors.entities import MACHINE_WIDE, Entity, ModelStore
from anomstream.evaluation.nab_corpus import read_series
from anomstream.stream.config import Config

__all__ = [
    "ReplayedSeries",
    "find_inputs",
    "iter_replays",
    "replay_file",
    "replay_series",
    "write_results",
]

EntityFor = Callable[[str], Entity]  # column name -> that sensor's entity


@dataclass(frozen=True)
class ReplayedSeries:
    """One replayed CSV: its rows, the per-column and combined scores."""

    relative_path: Path
    timestamps: list[str]
    values: Mapping[str, np.ndarray]
    column_scores: Mapping[str, np.ndarray]
    scores: np.ndarray  # the row's score: max over columns, in [0, 1]


def find_inputs(input_path: Path) -> list[tuple[Path, Path]]:
    """(file, path relative to the input) for a CSV file or every CSV under a directory."""
    if input_path.is_file():
        return [(input_path, Path(input_path.name))]
    if not input_path.is_dir():
        raise FileNotFoundError(f"{input_path}: no such file or directory")
    return [(p, p.relative_to(input_path)) for p in sorted(input_path.rglob("*.csv"))]


def replay_series(
    values: Mapping[str, np.ndarray],
    entity_for: EntityFor,
    warmup: int = 0,
    on_rows: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Per column: learn the first `warmup` readings, then score-then-learn; scores in [0, 1]."""
    scores: dict[str, np.ndarray] = {}
    for column, series in values.items():
        entity = entity_for(column)
        out = np.zeros(len(series))
        score_learn, learn_one = entity.score_learn, entity.model.learn_one  # hot loop
        for i, v in enumerate(series.tolist()):
            if math.isnan(v):  # a missing reading: nothing to score or learn
                continue
            x: dict = {"value": v}  # River types features as dict[Hashable, Any]
            if entity.learned >= warmup:
                out[i] = score_learn(x)
            else:
                learn_one(x)
            entity.learned += 1
        scores[column] = np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0)
        if on_rows is not None:
            on_rows(len(series))
    return scores


def _replay_machine_wide(
    values: Mapping[str, np.ndarray], entity: Entity, warmup: int
) -> np.ndarray:
    """`detector.entity = "machine"`: one model sees every column of a row at once."""
    columns = list(values)
    rows = np.column_stack([values[c] for c in columns])
    out = np.zeros(len(rows))
    for i, row in enumerate(rows.tolist()):
        x: dict = {c: v for c, v in zip(columns, row) if not math.isnan(v)}
        if entity.learned >= warmup:
            out[i] = entity.score_learn(x)
        else:
            entity.model.learn_one(x)
        entity.learned += 1
    return np.clip(out, 0.0, 1.0)


def replay_file(
    path: Path,
    relative_path: Path,
    config: Config,
    on_rows: Callable[[int], None] | None = None,
) -> ReplayedSeries:
    timestamps, values = read_series(path)
    if not values:
        raise ValueError(f"{path}: no value columns")
    # NAB result files carry a score column; it is output, not signal
    values = {k: v for k, v in values.items() if k not in ("anomaly_score", "label")}
    machine = relative_path.with_suffix("").as_posix()
    store = ModelStore.from_config(config.detector)
    state = store.machine(machine, 0, 0.0)
    warmup = config.detector.warmup
    if config.detector.entity == "machine":
        entity = store.entity(state, machine, MACHINE_WIDE)
        combined = _replay_machine_wide(values, entity, warmup)
        column_scores = {c: combined for c in values}
        if on_rows is not None:
            on_rows(len(combined))
    else:
        column_scores = replay_series(
            values, lambda sensor: store.entity(state, machine, sensor), warmup, on_rows
        )
        combined = np.max(np.vstack(list(column_scores.values())), axis=0)
    return ReplayedSeries(relative_path, timestamps, values, column_scores, combined)


def write_results(series: ReplayedSeries, output_dir: Path) -> Path:
    """`output_dir/<relative path>` as `timestamp,<value columns>,anomaly_score`."""
    target = output_dir / series.relative_path
    target.parent.mkdir(parents=True, exist_ok=True)
    columns = list(series.values)
    with open(target, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["timestamp", *columns, "anomaly_score"])
        for i, stamp in enumerate(series.timestamps):
            writer.writerow(
                [
                    stamp,
                    *(repr(float(series.values[c][i])) for c in columns),
                    repr(float(series.scores[i])),
                ]
            )
    return target


def iter_replays(
    inputs: list[tuple[Path, Path]], config: Config, on_rows: Callable[[int], None]
) -> Iterator[ReplayedSeries]:
    for path, relative in inputs:
        yield replay_file(path, relative, config, on_rows)
