"""The Tennessee Eastman process files as replay input: history, then a test run, as one CSV.

The files (`../shared/datasets/tep`, see its README) hold 52 variables per sample (XMEAS 1-41,
XMV 1-11), one sample every 3 minutes: `d00.dat`, 500 normal samples stored transposed, is a
machine's history; each `dNN_te.dat` is 960 samples with fault NN from sample 161 on (`d00_te`:
none). Streamed as one machine, history first, they are what a plant would send a service that
has no offline training step. Used by `bench/tep.py` and the alert tests on TEP.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from anomstream.stream.alerts import iso_time

__all__ = ["COLUMNS", "HISTORY", "ONSET", "START", "STEP_SECONDS", "TEST", "read_dat", "write_run"]

HISTORY, TEST, ONSET = 500, 960, 160  # samples; the fault starts after test sample 160
STEP_SECONDS = 180.0  # TEP's sampling interval, 3 minutes
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z: any fixed start; only the steps matter
COLUMNS = [f"xmeas_{i:02d}" for i in range(1, 42)] + [f"xmv_{i:02d}" for i in range(1, 12)]


def read_dat(path: Path) -> np.ndarray:
    """A TEP file as (samples, 52); `d00.dat` is stored transposed (52 x 500)."""
    data = np.loadtxt(path)
    if data.shape[0] == len(COLUMNS) and data.shape[1] != len(COLUMNS):
        data = data.T
    if data.shape[1] != len(COLUMNS):
        raise ValueError(f"{path}: {data.shape} is not samples x {len(COLUMNS)}")
    return data


def write_run(target: Path, history: np.ndarray, test: np.ndarray) -> None:
    """History then test samples as one CSV: `timestamp` (ISO, 180 s apart) and 52 columns."""
    rows = np.vstack([history, test])
    with open(target, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["timestamp", *COLUMNS])
        for i, row in enumerate(rows.tolist()):
            writer.writerow([iso_time(START + i * STEP_SECONDS), *map(repr, row)])
