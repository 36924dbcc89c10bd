"""`anomstream replay` and `anomstream nab-score` end to end on small CSVs written here."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from anomstream.stream.cli import main

N = 400


def write_csv(path: Path, columns: dict[str, list[float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["timestamp", *columns])
        for i in range(N):
            stamp = f"2024-01-{1 + i // 288:02d} {i % 288 // 12:02d}:{i % 12 * 5:02d}:00"
            writer.writerow([stamp, *(col[i] for col in columns.values())])


def signal(spike_at: int, phase: float = 0.0) -> list[float]:
    return [10 + math.sin(i / 10 + phase) + (25.0 if i == spike_at else 0.0) for i in range(N)]


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_replay_writes_nab_results_and_a_plot(tmp_path: Path) -> None:
    source = tmp_path / "in" / "machine.csv"
    write_csv(source, {"value": signal(300)})
    out = tmp_path / "out"
    assert main(["replay", str(source), "--output", str(out), "--plot", "--no-progress"]) == 0
    header, rows = read_rows(out / "machine.csv")
    assert header == ["timestamp", "value", "anomaly_score"]
    assert len(rows) == N
    scores = [float(r[2]) for r in rows]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert max(range(N), key=scores.__getitem__) == 300  # the spike is the top score
    assert (out / "machine.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_replay_of_a_tree_keeps_relative_paths_and_scores_each_column(tmp_path: Path) -> None:
    write_csv(tmp_path / "in/a/one.csv", {"value": signal(250)})
    write_csv(tmp_path / "in/b/two.csv", {"temp": signal(350), "vib": signal(200, phase=1.0)})
    out = tmp_path / "out"
    assert main(["replay", str(tmp_path / "in"), "-o", str(out), "--no-progress"]) == 0
    header, rows = read_rows(out / "b/two.csv")
    assert header == ["timestamp", "temp", "vib", "anomaly_score"]
    scores = [float(r[3]) for r in rows]
    top_two = sorted(range(N), key=scores.__getitem__)[-2:]
    assert sorted(top_two) == [200, 350]  # each column's spike, through the max of the models
    assert (out / "a/one.csv").is_file()


def test_nab_score_of_replayed_results(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    nab = tmp_path / "nab"
    write_csv(nab / "data/cat/series.csv", {"value": signal(300)})
    window = [["2024-01-02 00:40:00.000000", "2024-01-02 01:20:00.000000"]]  # rows 296..304
    (nab / "labels").mkdir()
    (nab / "labels/combined_windows.json").write_text(json.dumps({"cat/series.csv": window}))
    (nab / "config").mkdir()
    weights = {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 1.0, "tnWeight": 1.0}
    profiles = {"standard": {"CostMatrix": weights}}
    (nab / "config/profiles.json").write_text(json.dumps(profiles))
    out = tmp_path / "results"
    assert main(["replay", str(nab / "data"), "-o", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["nab-score", str(out), "--nab", str(nab), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    standard = report["profiles"]["standard"]
    assert report["files"] == 1
    assert (standard["tp"], standard["fn"], standard["fp"]) == (1, 0, 0)
    assert standard["score"] > 50  # detected at the spike, mid-window
