"""Sub-command `anomstream evaluate`: alert-level metrics of replay results against labels."""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from anomstream.evaluation.alert_metrics import AlertMetrics, combine, evaluate_alerts
from anomstream.stream.errors import AnomstreamError
from anomstream.stream.telemetry import MS_CUTOFF

__all__ = ["register", "run_evaluate"]

HELP = """\
Score the alerts of `anomstream replay` results against labelled anomalies.

RESULTS is the directory `anomstream replay INPUT -o RESULTS` wrote: for each file
RESULTS/<rel>.csv (its `timestamp` column gives the rows and their times) and
RESULTS/<rel>.alerts.jsonl (the alert documents, one per line; a document's row is its
`source.offset`). An alert covers the rows from its firing document up to its resolved one, or
to the end of the file if it never resolves.

LABELS is one of
  - a directory with LABELS/<rel>.csv for every results file, each with a label column
    (--label-column, default `label`; nonzero = anomalous) and as many rows as the results file;
    replay's INPUT directory itself, when its CSVs carry the label column. A `timestamp` column,
    if present, must match the results' row by row;
  - one such CSV, when RESULTS holds a single results file;
  - a JSON file of anomalous episodes per file: rows counted from 0 (the first data row),
    both ends inclusive, e.g.
        {"plant/run1.csv": [[500, 759], [900, 959]], "plant/run2.csv": []}

Per file and in total (rows summed over files): point-wise precision, recall and F1 of "row
inside an alert"; false-alarm rate (clean rows inside an alert) and missed-alarm rate (anomalous
rows outside every alert); episodes detected, mean delay from an episode's first row to the
first alert open in it; false alerts (firing on a clean row, overlapping no episode) per 10,000
clean rows; the share of clean time inside an alert; the longest resolution, from an episode's
last row to its alert's `resolved` (and how many detected episodes never resolve).
"""

_EXAMPLES = """\
example:
  anomstream replay plant/ -o results/
  anomstream evaluate results/ --labels plant/ --label-column fault
  anomstream evaluate results/ --labels episodes.json --json
  anomstream evaluate results/ --labels episodes.json --from-row 500   # 500 rows of history
"""



def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="alert-level metrics of replay results against labels",
        description=HELP,
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("results", metavar="RESULTS", type=Path, help="`anomstream replay -o` directory")
    parser.add_argument(
        "--labels", metavar="LABELS", type=Path, required=True,
        help="directory of labelled CSVs, one labelled CSV, or a JSON of episodes per file",
    )  # fmt: skip
    parser.add_argument(
        "--label-column", metavar="NAME", default="label",
        help="label column of labelled CSVs (default: label)",
    )  # fmt: skip
    parser.add_argument(
        "--from-row", metavar="N", type=_non_negative, default=0,
        help="score rows N.. only: earlier rows are history the models learn from (an alert "
        "open across row N still counts; default 0)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(func=run_evaluate)


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def run_evaluate(args: argparse.Namespace) -> int:
    found = _results(args.results)
    labels = _Labels(args.labels, args.label_column, single=len(found) == 1, from_row=args.from_row)
    per_file: dict[str, AlertMetrics] = {}
    for relative, csv_path, alerts_path in found:
        times = _event_times(csv_path)
        alerts = _read_alerts(alerts_path)
        try:
            per_file[relative] = labels.evaluate(relative, times, alerts)
        except ValueError as exc:  # alerts or episodes that do not fit the rows
            raise AnomstreamError(f"{relative}: {exc}") from None
    total = combine(per_file.values())
    if args.json:
        print(json.dumps(
            {"files": {k: m.to_dict() for k, m in per_file.items()}, "total": total.to_dict()},
            indent=2,
        ))  # fmt: skip
    else:
        _print_table(per_file, total)
    return 0


# ------------------------------------------------------------------------------- inputs


def _results(results: Path) -> list[tuple[str, Path, Path]]:
    """(relative name, results CSV, alerts JSONL) of every results file under `results`."""
    if not results.is_dir():
        raise AnomstreamError(f"{results}: no such directory (the output of `anomstream replay -o`)")
    found = []
    for path in sorted(results.rglob("*.csv")):
        alerts = path.with_suffix(".alerts.jsonl")
        if not alerts.is_file():
            raise AnomstreamError(f"{alerts}: no such file (results of `anomstream replay -o`?)")
        found.append((path.relative_to(results).as_posix(), path, alerts))
    if not found:
        raise AnomstreamError(f"{results}: no results CSV files")
    return found


def _columns(path: Path, wanted: Sequence[str], required: str) -> dict[str, list[tuple[int, str]]]:
    """The cells of the `wanted` columns present in `path`, with their line numbers."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            if required not in header:
                raise AnomstreamError(f"{path}: no {required!r} column (header: {header})")
            where = {name: header.index(name) for name in wanted if name in header}
            out: dict[str, list[tuple[int, str]]] = {name: [] for name in where}
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                for name, i in where.items():
                    out[name].append((line, row[i].strip() if i < len(row) else ""))
    except OSError as exc:
        raise AnomstreamError(f"{path}: {exc.strerror or exc}") from None
    return out


def _epoch(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        moment = datetime.fromisoformat(text)  # ValueError: neither
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return seconds / 1000 if abs(seconds) >= MS_CUTOFF else seconds  # the decoder's rule


def _times_of(path: Path, cells: list[tuple[int, str]]) -> np.ndarray:
    times = np.empty(len(cells))
    for i, (line, text) in enumerate(cells):
        try:
            times[i] = _epoch(text)
        except ValueError:
            raise AnomstreamError(
                f"{path}:{line}: timestamp {text!r} is neither ISO 8601 nor epoch seconds/ms"
            ) from None
    return times


def _event_times(path: Path) -> np.ndarray:
    return _times_of(path, _columns(path, ["timestamp"], "timestamp")["timestamp"])


def _read_alerts(path: Path) -> list[dict[str, Any]]:
    alerts = []
    with open(path, "rb") as f:
        for line, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                doc = orjson.loads(raw)
                doc["alert_id"], doc["status"], int(doc["source"]["offset"])
            except (orjson.JSONDecodeError, TypeError, KeyError, ValueError):
                raise AnomstreamError(
                    f"{path}:{line}: not an alert document (JSON with alert_id, status, "
                    "source.offset)"
                ) from None
            alerts.append(doc)
    return alerts


class _Labels:
    """Labels of each results file, from a directory of CSVs, one CSV or a JSON of episodes."""

    def __init__(self, path: Path, column: str, *, single: bool, from_row: int = 0) -> None:
        self.path, self.column, self.from_row = path, column, from_row
        self._episodes: dict[str, Any] | None = None
        if path.is_file() and path.suffix.lower() == ".json":
            try:
                loaded = json.loads(path.read_text("utf-8"))
            except (OSError, ValueError) as exc:
                raise AnomstreamError(f"--labels {path}: not a readable JSON file ({exc})") from None
            if not isinstance(loaded, dict):
                raise AnomstreamError(f"--labels {path}: expected an object of file -> episodes")
            self._episodes = {_strip_csv(k): v for k, v in loaded.items()}
        elif path.is_file() and not single:
            raise AnomstreamError(
                f"--labels {path}: one labelled CSV fits one results file; give a directory"
            )
        elif not path.exists():
            raise AnomstreamError(f"--labels {path}: no such file or directory")

    def evaluate(self, relative: str, times: np.ndarray, alerts: list[dict]) -> AlertMetrics:
        if self._episodes is None:
            labels = self._rows(relative, times)
            return evaluate_alerts(times, alerts, labels=labels, scored_from=self._start(times))
        episodes = self._episodes.get(_strip_csv(relative))
        if episodes is None:
            raise AnomstreamError(f"--labels {self.path}: no episodes for {relative!r}")
        if not isinstance(episodes, list) or not all(_is_pair(e) for e in episodes):
            raise AnomstreamError(
                f"--labels {self.path}: {relative!r} needs a list of [start_row, end_row] pairs"
            )
        for start, end in episodes:
            if not 0 <= start <= end < len(times):
                raise AnomstreamError(
                    f"--labels {self.path}: {relative!r} episode [{start}, {end}] is not inside "
                    f"rows 0..{len(times) - 1}"
                )
        return evaluate_alerts(
            times, alerts, episodes=[tuple(e) for e in episodes], scored_from=self._start(times)
        )

    def _start(self, times: np.ndarray) -> int:
        if self.from_row > len(times):
            raise AnomstreamError(f"--from-row {self.from_row}: the results have {len(times)} rows")
        return self.from_row

    def _rows(self, relative: str, times: np.ndarray) -> np.ndarray:
        path = self.path if self.path.is_file() else self.path / relative
        if not path.is_file():
            raise AnomstreamError(f"{path}: no such labels file (for results {relative!r})")
        cells = _columns(path, [self.column, "timestamp"], self.column)
        labels = cells[self.column]
        if len(labels) != len(times):
            raise AnomstreamError(f"{path}: {len(labels)} rows, but the results have {len(times)}")
        if "timestamp" in cells:
            mismatch = np.flatnonzero(_times_of(path, cells["timestamp"]) != times)
            if mismatch.size:
                line, text = cells["timestamp"][mismatch[0]]
                raise AnomstreamError(
                    f"{path}:{line}: timestamp {text!r} is not the results' row {mismatch[0]}"
                )
        out = np.empty(len(labels), dtype=bool)
        for i, (line, text) in enumerate(labels):
            value = _number(text)
            if value is None:
                raise AnomstreamError(f"{path}:{line}: label {text!r} is not a number")
            out[i] = value != 0
        return out


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _is_pair(e: Any) -> bool:
    return isinstance(e, list) and len(e) == 2 and all(type(v) is int for v in e)


def _strip_csv(name: str) -> str:
    return name[:-4] if name.lower().endswith(".csv") else name


# ------------------------------------------------------------------------------- output


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


_COLUMNS = (
    f"{'file':<32} {'rows':>7} {'anom':>6} {'prec':>6} {'recall':>6} {'F1':>6} {'FAR':>6} "
    f"{'MAR':>6} {'episodes':>9} {'delay':>7} {'FA/10k':>7} {'clean%':>7} {'resolve':>8}"
)


def _row(name: str, m: AlertMetrics) -> str:
    c = m.counts
    share = m.clean_time_in_alert
    resolve = _fmt(m.max_resolution_rows, "d") + ("" if not m.unresolved_episodes else "+")
    return (
        f"{name:<32} {c.rows:>7d} {c.anomalous_rows:>6d} {_fmt(m.precision):>6} "
        f"{_fmt(m.recall):>6} {_fmt(m.f1):>6} {_fmt(m.false_alarm_rate):>6} "
        f"{_fmt(m.missed_alarm_rate):>6} {f'{m.detected_episodes}/{len(m.episodes)}':>9} "
        f"{_fmt(m.mean_delay_rows, '.1f'):>7} {_fmt(m.false_alerts_per_10k, '.2f'):>7} "
        f"{_fmt(None if share is None else 100 * share, '.2f'):>7} {resolve:>8}"
    )


def _print_table(per_file: dict[str, AlertMetrics], total: AlertMetrics) -> None:
    print(_COLUMNS)
    for name, m in per_file.items():
        print(_row(name, m))
    print(_row(f"total ({len(per_file)} files)", total))
    print(
        "delay: mean rows from an episode's start to its first alert; resolve: most rows from an "
        "episode's end to `resolved` (+: some detected episodes never resolve)"
    )
