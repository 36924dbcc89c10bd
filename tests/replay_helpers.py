"""A small machine for replay tests: three sensors, one of which steps up for a while."""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path

__all__ = ["SHIFT", "write_shift_series"]

SHIFT = range(700, 760)  # "temp" steps up by 6 (about 30 sigma of its noise) for 60 readings
START = 1_700_000_000  # epoch seconds of row 0; one row a minute


def write_shift_series(
    path: Path,
    rows: int = 1200,
    *,
    timestamp_column: str = "timestamp",
    millis: bool = False,
    cells: dict[tuple[int, str], str] | None = None,
) -> Path:
    """Columns temp, vib, load with epoch timestamps (seconds, or ms with `millis`).

    `cells` overrides single cells, (row, column) -> text: an empty cell, a word, "inf".
    With the default detector and `detector.warmup = 50`, the shift fires one alert at row 700
    that resolves at about row 900.
    """
    rng = random.Random(7)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([timestamp_column, "temp", "vib", "load"])
        for i in range(rows):
            temp = 20 + math.sin(i / 15) + rng.gauss(0, 0.2) + (6.0 if i in SHIFT else 0.0)
            row = {
                "temp": round(temp, 3),
                "vib": round(1 + rng.gauss(0, 0.05), 4),
                "load": round(50 + rng.gauss(0, 1), 2),
            }
            for (r, column), text in (cells or {}).items():
                if r == i:
                    row[column] = text
            stamp = (START + 60 * i) * (1000 if millis else 1)
            writer.writerow([stamp, *row.values()])
    return path
