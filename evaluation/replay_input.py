"""A CSV time series as the telemetry records the service would have consumed.

One file is one machine (its id: the file's path relative to the replay input, without suffix)
and each value column one of its sensors. Row i becomes the record a producer would have sent:
a kafka-python `ConsumerRecord` with topic `replay` (or the one given), partition 0, offset i,
key = machine id, value = the JSON telemetry document in the configured field names
(`telemetry.machine_field`, `timestamp_field`, `sensors_field`), Kafka timestamp = event time in
milliseconds, no headers. Decoding that value is then the service's job, not replay's.

Cells are read as the decoder's telemetry semantics want them: an empty or non-numeric cell (NaN
included) leaves that sensor out of that reading, as a producer omits a sensor it has no value
for; a number is sent as it is, so one the service refuses (infinite, beyond ±1e38) makes the row
a dead letter with the decoder's reason, as it would in the service. Timestamps are parsed by the
service's decoder as well: ISO-8601 (naive = UTC) or epoch seconds / milliseconds told apart by
magnitude (`telemetry.timestamp_unit`); one it cannot parse stops the replay with the file, row
and column named, since a row without a time has no place in a series.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
from kafka.consumer.fetcher import ConsumerRecord

from anomstream.stream.config import TelemetryConfig
from anomstream.stream.errors import InvalidRecord
from anomstream.stream.telemetry import TelemetryDecoder, valid_name

__all__ = [
    "DEFAULT_TOPIC",
    "NOT_SENSORS",
    "CsvSeries",
    "ReplayInputError",
    "csv_records",
    "read_csv_series",
]

DEFAULT_TOPIC = "replay"
# Columns of NAB result files: output of a detector and labels, never signal.
NOT_SENSORS = frozenset({"anomaly_score", "label"})
_EPOCH = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_CREATE_TIME = 0  # ConsumerRecord.timestamp_type: the producer's event time


class ReplayInputError(ValueError):
    """A CSV replay cannot read: the message names the file, the row and the column."""


@dataclass(frozen=True)
class CsvSeries:
    """One CSV file read for replay; row i of every field is data row i of the file."""

    path: Path
    timestamps: list[str]  # the timestamp cells as written
    event_times: np.ndarray  # epoch seconds, as the decoder reads the cells
    stamps: list[int | float | str]  # the timestamp as it goes into the JSON document
    values: dict[str, np.ndarray]  # sensor -> float per row, NaN where the sensor is absent

    def __len__(self) -> int:
        return len(self.timestamps)


def _stamp(cell: str) -> int | float | str:
    """An epoch number as a JSON number (int when integral), anything else as the string."""
    if not _EPOCH.match(cell):  # cheap test first: most timestamps are ISO strings
        return cell
    try:
        return int(cell)
    except ValueError:
        return float(cell)


def read_csv_series(
    path: Path, telemetry: TelemetryConfig, timestamp_column: str = "timestamp"
) -> CsvSeries:
    """Read `path`; the timestamp cells are parsed as the telemetry decoder parses them."""
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's BOM
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        # (line number, cells); blank lines skipped, as NAB's corpus reader skips them
        numbered = [(reader.line_num, row) for row in reader if row]
    rows = [row for _, row in numbered]
    if timestamp_column not in header:
        raise ReplayInputError(
            f"{path}: no timestamp column {timestamp_column!r} (header: {', '.join(header)}); "
            "name it with --timestamp-column"
        )
    t = header.index(timestamp_column)
    sensors = [(i, name) for i, name in enumerate(header) if i != t and name not in NOT_SENSORS]
    for i, name in sensors:
        if not valid_name(name) and any(i < len(row) and row[i].strip() for row in rows):
            # The decoder would refuse every reading of the file (bad_shape): say it once.
            raise ReplayInputError(
                f"{path}: column {i + 1} ({name!r}) has values but no usable name for a sensor"
            )
    sensors = [(i, name) for i, name in sensors if valid_name(name)]  # e.g. trailing commas
    if not sensors:
        raise ReplayInputError(f"{path}: no value columns besides {timestamp_column!r}")
    # The decoder's own parser, so replay and the service agree on every timestamp.
    parse_time = TelemetryDecoder(telemetry).timestamp
    timestamps: list[str] = []
    stamps: list[int | float | str] = []
    times = np.empty(len(rows))
    columns = {name: np.full(len(rows), math.nan) for _, name in sensors}
    for r, row in enumerate(rows):
        cell = row[t].strip() if t < len(row) else ""
        stamp = _stamp(cell)
        try:
            times[r] = parse_time(stamp)
        except InvalidRecord as exc:
            raise ReplayInputError(
                f"{path}:{numbered[r][0]} (data row {r + 1}): column {timestamp_column!r}: "
                f"{exc.detail or 'no timestamp'}"
            ) from None
        timestamps.append(row[t] if t < len(row) else "")
        stamps.append(stamp)
        for i, name in sensors:
            if i < len(row) and row[i]:
                try:
                    columns[name][r] = float(row[i])
                except ValueError:
                    pass  # not a number: the sensor is absent from this reading
    return CsvSeries(path, timestamps, times, stamps, columns)


def csv_records(
    series: CsvSeries, machine: str, telemetry: TelemetryConfig, topic: str = DEFAULT_TOPIC
) -> Iterator[ConsumerRecord]:
    """The records of `series`, one per row, as the consumer would hand them to the pipeline."""
    machine_field, ts_field, sensors_field = (
        telemetry.machine_field, telemetry.timestamp_field, telemetry.sensors_field
    )
    key = machine.encode("utf-8")
    names = list(series.values)
    table = np.column_stack([series.values[n] for n in names])
    infinite = np.isinf(table).any(axis=1).tolist()
    rows = zip(table.tolist(), series.stamps, series.event_times.tolist(), infinite)
    for offset, (row, stamp, when, inf) in enumerate(rows):
        sensors = {n: v for n, v in zip(names, row) if v == v}  # NaN != NaN: absent
        doc = {machine_field: machine, ts_field: stamp, sensors_field: sensors}
        # Infinity as Python producers send it (orjson would write null: another reason).
        value = json.dumps(doc).encode() if inf else orjson.dumps(doc)
        yield ConsumerRecord(
            topic, 0, -1, offset, round(when * 1000), _CREATE_TIME, key, value, None,
            None, len(key), len(value), -1,
        )
