"""The NAB corpus on disk: data files, label windows, cost profiles, and detector results.

Layout (as NAB ships it, see `../shared/datasets/nab/README.md`)::

    data/<category>/<name>.csv          timestamp,value
    labels/combined_windows.json        {"<category>/<name>.csv": [[start, end], ...]}
    config/profiles.json                {"standard": {"CostMatrix": {...}}, ...}

A results directory holds one CSV per data file with an `anomaly_score` column, either as NAB
names them (`<category>/<detector>_<name>.csv`) or as `anomstream replay` writes them
(`<category>/<name>.csv`). Replay also writes each file's alerts, `<category>/<name>.alerts.jsonl`
(one `anomstream.alert/v1` document per line), which `read_firing_rows` reads.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "ALERTS_SUFFIX",
    "DataFile",
    "Profile",
    "load_corpus",
    "load_profiles",
    "load_windows",
    "match_results",
    "profiles_in",
    "read_firing_rows",
    "read_scores",
    "read_series",
]

ALERTS_SUFFIX = ".alerts.jsonl"  # what `anomstream replay` writes next to each results CSV


@dataclass(frozen=True)
class Profile:
    """One NAB application profile: the weights of its cost matrix."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


@dataclass(frozen=True)
class DataFile:
    """One labelled series: timestamps and the row ranges of its anomaly windows."""

    key: str  # "<category>/<name>.csv", the key of combined_windows.json
    timestamps: np.ndarray  # datetime64[us], one per row
    windows: tuple[tuple[int, int], ...]  # inclusive (first_row, last_row) per window

    @property
    def n_rows(self) -> int:
        return len(self.timestamps)


def _parse_times(values: Iterable[str]) -> np.ndarray:
    return np.array(list(values), dtype="datetime64[us]")


def read_series(path: str | Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """Read a CSV with a `timestamp` column: raw timestamps and every other column as floats.

    Empty cells become NaN (a missing reading); anything else that is not a number is an error
    naming the file and line.
    """
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        rows = [row for row in reader if row]
    if "timestamp" not in header:
        raise ValueError(f"{path}: no 'timestamp' column (header: {header})")
    t = header.index("timestamp")
    stamps = [row[t] for row in rows]
    columns = {}
    for i, name in enumerate(header):
        if i == t:
            continue
        try:
            columns[name] = np.array([float(row[i]) if row[i] else math.nan for row in rows])
        except (ValueError, IndexError):
            bad = next(n for n, row in enumerate(rows) if not _is_number(row, i))
            raise ValueError(f"{path}:{bad + 2}: column {name!r} is not a number") from None
    return stamps, columns


def _is_number(row: list[str], i: int) -> bool:
    try:
        float(row[i]) if row[i] else None
    except (ValueError, IndexError):
        return False
    return True


def read_scores(path: str | Path) -> np.ndarray:
    """The `anomaly_score` column of a results file."""
    _, columns = read_series(path)
    if "anomaly_score" not in columns:
        raise ValueError(f"{path}: no 'anomaly_score' column")
    return columns["anomaly_score"]


def read_firing_rows(path: str | Path) -> list[int]:
    """The rows (`source.offset`) of the firing alerts in an alerts JSONL file."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                alert = json.loads(line)
                if alert["status"] == "firing":
                    rows.append(int(alert["source"]["offset"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{n}: not an alert document ({exc})") from None
    return rows


def load_windows(path: str | Path) -> dict[str, list[tuple[str, str]]]:
    """`combined_windows.json`: data file key -> list of (start, end) timestamp strings."""
    raw = json.loads(Path(path).read_text("utf-8"))
    return {key: [(w[0], w[1]) for w in windows] for key, windows in raw.items()}


def load_profiles(path: str | Path) -> dict[str, Profile]:
    raw = json.loads(Path(path).read_text("utf-8"))
    return {
        name: Profile(
            name,
            tp_weight=float(spec["CostMatrix"]["tpWeight"]),
            fp_weight=float(spec["CostMatrix"]["fpWeight"]),
            fn_weight=float(spec["CostMatrix"]["fnWeight"]),
        )
        for name, spec in raw.items()
    }


def window_rows(timestamps: np.ndarray, start: str, end: str) -> tuple[int, int]:
    """Inclusive row range of the window [start, end] (label times need not be data times)."""
    lo = int(np.searchsorted(timestamps, np.datetime64(start, "us"), side="left"))
    hi = int(np.searchsorted(timestamps, np.datetime64(end, "us"), side="right")) - 1
    if hi < lo:
        raise ValueError(f"window {start} .. {end} contains no rows")
    return lo, hi


def load_corpus(nab_dir: str | Path, keys: Iterable[str] | None = None) -> dict[str, DataFile]:
    """Every labelled data file of the corpus (or those in `keys`), keyed like the labels."""
    nab = Path(nab_dir)
    labels = load_windows(nab / "labels" / "combined_windows.json")
    corpus: dict[str, DataFile] = {}
    for key in sorted(labels if keys is None else keys):
        with open(nab / "data" / key, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            next(reader)
            stamps = _parse_times(row[0] for row in reader if row)
        windows = tuple(window_rows(stamps, s, e) for s, e in labels[key])
        corpus[key] = DataFile(key, stamps, windows)
    return corpus


def match_results(
    results_dir: str | Path, keys: Iterable[str], suffix: str = ".csv"
) -> dict[str, Path]:
    """Map each data file key to its results file: same category, name equal or `<prefix>_name`.

    The longest matching data name wins, so `numenta_speed_6005.csv` is never taken for a data
    file called `6005.csv`. Data files without results are left out. `suffix` replaces the
    data file's `.csv` in the results' names (`ALERTS_SUFFIX` for replay's alert files).
    """
    root = Path(results_dir)
    by_category: dict[str, list[str]] = {}
    for key in keys:
        category, name = key.split("/", 1)
        by_category.setdefault(category, []).append(name)
    found: dict[str, Path] = {}
    for category, names in by_category.items():
        folder = root / category
        if not folder.is_dir():
            continue
        longest_first = sorted(names, key=len, reverse=True)
        for path in sorted(folder.glob("*" + suffix)):
            for name in longest_first:
                wanted = Path(name).stem + suffix
                if path.name == wanted or path.name.endswith("_" + wanted):
                    key = f"{category}/{name}"
                    if key in found and found[key].name == wanted:
                        break  # an exact-name file beats a prefixed one
                    found[key] = path
                    break
    return found


def profiles_in(nab_dir: str | Path) -> Mapping[str, Profile]:
    """The profiles of a NAB directory (`config/profiles.json`)."""
    return load_profiles(Path(nab_dir) / "config" / "profiles.json")
