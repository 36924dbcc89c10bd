"""Offline replay: CSV series through the service's own pipeline; NAB-format scores and alerts.

There is one code path. Each CSV row becomes the telemetry record a producer would have sent
(`anomstream.evaluation.replay_input`), and the records go, in batches of
`kafka.max_poll_records` as a consumer polls them, through `anomstream.stream.pipeline.Pipeline`:
the decoder, the models of `ModelStore` (templates, warm-up, per-entity seeds), the alert
policy and alert building that `anomstream run` uses. What replay keeps is what the service
would have published (the alert documents, the dead letters) plus each row's machine score,
taken from the pipeline's `on_scored` hook.

Two things differ from a live service, by design:

- metrics go to a private registry (nothing serves them);
- the clock is the data's: each batch is processed "at" the event time of its latest reading,
  as if it were consumed the moment it filled. An alert's `detected_at` is therefore
  deterministic (the same file gives the same documents, byte for byte), and never earlier than
  its `event_time`; only `detected_at` depends on the batch size.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from prometheus_client import CollectorRegistry

from anomstream.evaluation.nab_corpus import ALERTS_SUFFIX
from anomstream.evaluation.replay_input import (
    DEFAULT_TOPIC,
    csv_records,
    read_csv_series,
)
from anomstream.stream.config import Config
from anomstream.stream.metrics import Metrics
from anomstream.stream.pipeline import DLQ_REASON_HEADER, Pipeline, RecordLike
from anomstream.stream.telemetry import Reading

__all__ = [
    "DeadLetter",
    "ReplayedSeries",
    "alerts_path",
    "find_inputs",
    "iter_replays",
    "replay_file",
    "replay_records",
    "write_results",
]

OnScored = Callable[[RecordLike, Reading, float], None]


@dataclass(frozen=True)
class DeadLetter:
    """A record the pipeline refused: its offset (the CSV row), the decoder's reason, detail."""

    offset: int
    reason: str
    detail: str


@dataclass(frozen=True)
class ReplayedSeries:
    """One replayed CSV: its rows, each row's machine score, the alerts and dead letters."""

    relative_path: Path
    timestamps: list[str]  # as written in the file
    event_times: np.ndarray  # epoch seconds
    values: dict[str, np.ndarray]  # sensor -> value per row, NaN where absent
    scores: np.ndarray  # the row's machine score in [0, 1]; 0 in warm-up and for dead letters
    alerts: list[dict[str, Any]]  # `anomstream.alert/v1` documents, as the service publishes them
    dead_letters: list[DeadLetter] = field(default_factory=list)


class _EventClock:
    """The pipeline's clock during replay: the event time of the batch being processed."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _dead_letter(headers: list[tuple[str, bytes]]) -> DeadLetter:
    h = dict(headers)
    return DeadLetter(
        int(h["anomstream-source-offset"]),
        h[DLQ_REASON_HEADER].decode(),
        h.get("anomstream-dlq-detail", b"").decode("utf-8", "replace"),
    )


def replay_records(
    records: Iterable[RecordLike],
    config: Config,
    on_scored: OnScored | None = None,
    *,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[list[dict[str, Any]], list[DeadLetter]]:
    """Run `records` through a fresh `Pipeline` as `anomstream run` would; (alerts, dead letters).

    `on_scored(record, reading, score)` is the pipeline's hook, once per processed reading;
    `on_batch(n)` follows each batch of n records (progress).
    """
    clock = _EventClock()
    pipeline = Pipeline(
        config, metrics=Metrics(registry=CollectorRegistry()), clock=clock, on_scored=on_scored
    )
    alerts: list[dict[str, Any]] = []
    dead: list[DeadLetter] = []
    batch_size = config.kafka.max_poll_records
    it = iter(records)
    while batch := list(islice(it, batch_size)):
        clock.now = max(r.timestamp for r in batch) / 1000.0
        out = pipeline.process(batch)
        alerts.extend(orjson.loads(m.value) for m in out.alerts)
        dead.extend(_dead_letter(m.headers) for m in out.dead_letters)
        if on_batch is not None:
            on_batch(len(batch))
    return alerts, dead


def find_inputs(input_path: Path) -> list[tuple[Path, Path]]:
    """(file, path relative to the input) for a CSV file or every CSV under a directory."""
    if input_path.is_file():
        return [(input_path, Path(input_path.name))]
    if not input_path.is_dir():
        raise FileNotFoundError(f"{input_path}: no such file or directory")
    return [(p, p.relative_to(input_path)) for p in sorted(input_path.rglob("*.csv"))]


def replay_file(
    path: Path,
    relative_path: Path,
    config: Config,
    timestamp_column: str | None = None,
    *,
    topic: str = DEFAULT_TOPIC,
    on_rows: Callable[[int], None] | None = None,
) -> ReplayedSeries:
    """Replay one CSV as machine `<relative_path without suffix>`, each value column a sensor."""
    series = read_csv_series(path, config.telemetry, timestamp_column or "timestamp")
    machine = relative_path.with_suffix("").as_posix()
    scores = np.zeros(len(series))

    def on_scored(record: RecordLike, reading: Reading, score: float) -> None:
        scores[record.offset] = score

    alerts, dead = replay_records(
        csv_records(series, machine, config.telemetry, topic), config, on_scored, on_batch=on_rows
    )
    return ReplayedSeries(
        relative_path, series.timestamps, series.event_times, series.values,
        np.clip(scores, 0.0, 1.0), alerts, dead,
    )


def alerts_path(output_dir: Path, relative_path: Path) -> Path:
    """`output_dir/<relative path without suffix>.alerts.jsonl`."""
    return output_dir / relative_path.with_suffix(ALERTS_SUFFIX)


def write_results(series: ReplayedSeries, output_dir: Path) -> Path:
    """`output_dir/<relative path>` as `timestamp,<value columns>,anomaly_score`, and its
    alerts as `alerts_path(...)`: one alert document per line, in publishing order."""
    target = output_dir / series.relative_path
    target.parent.mkdir(parents=True, exist_ok=True)
    columns = list(series.values)
    cells = np.column_stack([series.values[c] for c in columns]).tolist()
    with open(target, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["timestamp", *columns, "anomaly_score"])
        for stamp, row, score in zip(series.timestamps, cells, series.scores.tolist()):
            # An absent sensor stays an empty cell, as NAB's reader and `read_series` expect.
            writer.writerow([stamp, *("" if v != v else repr(v) for v in row), repr(score)])
    with open(alerts_path(output_dir, series.relative_path), "wb") as f:
        for alert in series.alerts:
            f.write(orjson.dumps(alert) + b"\n")
    return target


def iter_replays(
    inputs: list[tuple[Path, Path]],
    config: Config,
    on_rows: Callable[[int], None],
    timestamp_column: str | None = None,
) -> Iterator[ReplayedSeries]:
    for path, relative in inputs:
        yield replay_file(path, relative, config, timestamp_column, on_rows=on_rows)
