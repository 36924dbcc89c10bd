"""`anomstream nab-score --alerts`: replay's firing alerts are the detections, NAB's rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anomstream.stream.cli import main

N = 400  # rows of the data file; probation (15 %) ends at row 60


def tiny_corpus(nab: Path) -> None:
    """One data file `cat/series.csv` of N rows, one label window over rows 296..304."""
    (nab / "data/cat").mkdir(parents=True)
    lines = ["timestamp,value"] + [
        f"2024-01-{1 + i // 288:02d} {i % 288 // 12:02d}:{i % 12 * 5:02d}:00,1.0" for i in range(N)
    ]
    (nab / "data/cat/series.csv").write_text("\n".join(lines) + "\n")
    window = [["2024-01-02 00:40:00.000000", "2024-01-02 01:20:00.000000"]]
    (nab / "labels").mkdir()
    (nab / "labels/combined_windows.json").write_text(json.dumps({"cat/series.csv": window}))
    (nab / "config").mkdir()
    weights = {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 1.0, "tnWeight": 1.0}
    (nab / "config/profiles.json").write_text(json.dumps({"standard": {"CostMatrix": weights}}))


def alert_line(ident: str, status: str, row: int) -> str:
    return json.dumps({"schema": "anomstream.alert/v1", "alert_id": ident, "status": status,
                       "source": {"topic": "replay", "partition": 0, "offset": row}})


def test_firing_alerts_are_the_detections(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    nab, results = tmp_path / "nab", tmp_path / "results"
    tiny_corpus(nab)
    (results / "cat").mkdir(parents=True)
    # In the window at 300 (its resolve at 320 is no detection), a false alarm at 100.
    lines = [alert_line("a", "firing", 100), alert_line("a", "resolved", 130),
             alert_line("b", "firing", 300), alert_line("b", "resolved", 320)]
    (results / "cat/series.alerts.jsonl").write_text("\n".join(lines) + "\n")
    # A raw results CSV next to it must not be what --alerts scores.
    (results / "cat/series.csv").write_text("timestamp,value,anomaly_score\n")
    assert main(["nab-score", str(results), "--nab", str(nab), "--alerts", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    standard = report["profiles"]["standard"]
    assert (report["mode"], report["files"]) == ("alerts", 1)
    assert (standard["tp"], standard["fn"], standard["fp"], standard["threshold"]) == (1, 0, 1, 0.5)
    assert main(["nab-score", str(results), "--nab", str(nab), "--alerts"]) == 0
    table = capsys.readouterr().out
    assert "alerts" in table.splitlines()[0] and "standard" in table


def test_no_alerts_is_the_null_detector_and_a_bad_line_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    nab, results = tmp_path / "nab", tmp_path / "results"
    tiny_corpus(nab)
    (results / "cat").mkdir(parents=True)
    (results / "cat/series.alerts.jsonl").write_text("")  # replay wrote no alert
    assert main(["nab-score", str(results), "--nab", str(nab), "--alerts", "--json"]) == 0
    standard = json.loads(capsys.readouterr().out)["profiles"]["standard"]
    assert (standard["tp"], standard["fn"], standard["fp"], standard["score"]) == (0, 1, 0, 0.0)
    (results / "cat/series.alerts.jsonl").write_text("{not json\n")
    assert main(["nab-score", str(results), "--nab", str(nab), "--alerts"]) == 1
    assert "series.alerts.jsonl:1: not an alert document" in capsys.readouterr().err


def test_replayed_alerts_of_the_real_corpus_file_score(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    nab = Path(__file__).resolve().parents[2] / "shared/datasets/nab"
    key = "realKnownCause/machine_temperature_system_failure.csv"
    # ../shared sits beside the project, in CI too (tests/test_nab_scorer.py needs it as well)
    assert (nab / "data" / key).is_file(), f"no NAB corpus at {nab}: ../shared/datasets/nab"
    data = tmp_path / "data/realKnownCause"
    data.mkdir(parents=True)
    (data / Path(key).name).symlink_to(nab / "data" / key)
    out = tmp_path / "results"
    # The plumbing on a real file, not the default detector's quality: the fast detector will do.
    replay = ["replay", str(tmp_path / "data"), "-o", str(out), "--detector", "ewm-zscore"]
    assert main([*replay, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["nab-score", str(out), "--nab", str(nab), "--alerts", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    standard = report["profiles"]["standard"]
    assert report["files"] == 1 and standard["tp"] + standard["fn"] == 4  # its four windows
