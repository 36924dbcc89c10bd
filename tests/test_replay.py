"""`anomstream replay` and `anomstream nab-score` end to end on small CSVs written here."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from anomstream.evaluation.replay import replay_file
from anomstream.evaluation.replay_input import csv_records, read_csv_series
from anomstream.stream.cli import main
from anomstream.stream.config import Config, load_config
from anomstream.stream.metrics import Metrics
from anomstream.stream.pipeline import Pipeline
from fakes import validate_alert
from replay_helpers import SHIFT, write_shift_series

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
    assert scores[200] >= 0.99999 and scores[350] >= 0.99999  # each column's spike
    # What a user receives: one alert per spike, fired at the spike, naming its column first
    alerts = [json.loads(line) for line in (out / "b/two.alerts.jsonl").read_text().splitlines()]
    firing = [(a["source"]["offset"], a["sensors"][0]["name"]) for a in alerts if a["status"] == "firing"]
    assert firing == [(200, "vib"), (350, "temp")]
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


# --- replay is the service's pipeline: alerts, machines, timestamps, dead letters ---


def replay_config(**overrides: object) -> Config:
    return load_config(environ={}, overrides={"state.enabled": False, **overrides})


def test_a_multi_column_file_is_one_machine_and_its_alerts_are_written_as_jsonl(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    source = write_shift_series(
        tmp_path / "in/plant/press.csv", timestamp_column="time", millis=True
    )
    out = tmp_path / "out"
    args = ["replay", str(tmp_path / "in"), "-o", str(out), "--timestamp-column", "time",
            "--no-progress"]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ANOMSTREAM_DETECTOR__WARMUP", "50")
        assert main(args) == 0
        first = (out / "plant/press.alerts.jsonl").read_bytes()
        assert "1 alert(s) fired, 0 dead letter(s)" in capsys.readouterr().err
        assert main(args) == 0  # deterministic, detected_at included: the clock is the data's
    assert (out / "plant/press.alerts.jsonl").read_bytes() == first
    alerts = [validate_alert(line) for line in first.splitlines()]  # the v1 JSON Schema
    assert [a["status"] for a in alerts] == ["firing", "resolved"]
    firing = alerts[0]
    assert firing["schema"] == "anomstream.alert/v1"
    assert firing["machine_id"] == "plant/press"  # relative path without suffix
    assert firing["source"] == {"topic": "replay", "partition": 0, "offset": SHIFT.start}
    assert [s["name"] for s in firing["sensors"]] == ["temp"]
    assert set(firing["values"]) == {"temp", "vib", "load"}  # one reading of three sensors
    # epoch milliseconds read as the decoder reads them; detected_at: the batch's last row
    assert firing["event_time"] == "2023-11-15T09:53:20.000Z"  # (1_700_000_000 + 60 * 700) s
    assert firing["detected_at"] >= firing["event_time"]
    header, rows = read_rows(out / "plant/press.csv")
    assert header == ["timestamp", "temp", "vib", "load", "anomaly_score"]
    assert len(rows) == 1200 and rows[0][0] == str(1_700_000_000_000)
    scores = [float(r[4]) for r in rows]
    assert scores[:50] == [0.0] * 50  # warm-up: the pipeline learns without scoring
    assert scores[SHIFT.start] >= 0.9999  # the machine score that fired, from on_scored
    assert source.is_file()


def test_row_scores_are_the_pipelines_machine_scores(tmp_path: Path) -> None:
    config = replay_config(**{"detector.warmup": 50})
    source = write_shift_series(tmp_path / "m.csv", rows=300)
    replayed = replay_file(source, Path("m.csv"), config)
    series = read_csv_series(source, config.telemetry)
    seen: dict[int, float] = {}
    pipeline = Pipeline(
        config, metrics=Metrics(registry=CollectorRegistry()),
        on_scored=lambda record, reading, score: seen.__setitem__(record.offset, score),
    )
    pipeline.process(list(csv_records(series, "m", config.telemetry)))
    assert replayed.scores.tolist() == [seen[i] for i in range(300)]
    assert replayed.event_times[1] - replayed.event_times[0] == 60.0


def test_absent_cells_drop_the_sensor_and_refused_rows_are_dead_letters(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cells = {(10, "vib"): "", (11, "vib"): "n/a", (12, "load"): "inf", (13, "temp"): "1e39"}
    source = write_shift_series(tmp_path / "in/m.csv", rows=200, cells=cells)
    replayed = replay_file(source, Path("m.csv"), replay_config())
    assert [(d.offset, d.reason) for d in replayed.dead_letters] == [
        (12, "non_finite"), (13, "out_of_range"),
    ]
    out = tmp_path / "out"
    assert main(["replay", str(source), "-o", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "m.csv: 2 dead letter(s) (non_finite x1, out_of_range x1); first at data row 13" in err
    _, rows = read_rows(out / "m.csv")
    assert rows[10][2] == "" and rows[11][2] == ""  # absent from the reading, and from the output
    assert len(rows) == 200


def test_an_unreadable_timestamp_names_file_row_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    source = tmp_path / "bad.csv"
    source.write_text("time,value\n2024-01-01 00:00:00,1\n\nyesterday,2\n")
    assert main(["replay", str(source), "-o", str(tmp_path / "o"), "--no-progress",
                 "--timestamp-column", "time"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{source}:4 (data row 2): column 'time':" in err and "yesterday" in err
    assert main(["replay", str(source), "-o", str(tmp_path / "o"), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{source}: no timestamp column 'timestamp'" in err and "--timestamp-column" in err


def test_help_describes_inputs_outputs_flags_and_an_example(capsys: pytest.CaptureFixture) -> None:
    for command, words in [
        ("replay", ["INPUT", ".alerts.jsonl", "--timestamp-column", "epoch", "dead letter",
                    "detected_at", "--plot", "--labels", "example:"]),
        ("nab-score", ["RESULTS_DIR", "--alerts", "source.offset", "fixed threshold", "example:"]),
    ]:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        missing = [w for w in words if w not in text]
        assert not missing, (command, missing)


def test_an_unnamed_column_is_skipped_when_empty_and_an_error_when_not(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    source = tmp_path / "m.csv"
    source.write_text("\ufefftimestamp,value,\n2024-01-01 00:00:00,1,\n2024-01-01 00:05:00,2,\n")
    replayed = replay_file(source, Path("m.csv"), replay_config())  # a BOM, trailing commas
    assert list(replayed.values) == ["value"] and not replayed.dead_letters
    source.write_text("timestamp,value,\n2024-01-01 00:00:00,1,7\n")
    assert main(["replay", str(source), "-o", str(tmp_path / "o"), "--no-progress"]) == 1
    assert "column 3 ('') has values but no usable name" in capsys.readouterr().err
