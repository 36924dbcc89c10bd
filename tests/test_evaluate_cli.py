"""`anomstream evaluate` on a hand-made results directory: exact numbers, clear errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import orjson
import pytest
from anomstream.stream.alerts import iso_time
from anomstream.stream.cli import main

T0 = 1_800_000_000.0
ROWS = 20


def _stamp(i: int) -> str:
    return iso_time(T0 + 60 * i)


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def _alert(ident: str, status: str, row: int) -> dict:
    return {"alert_id": ident, "status": status, "event_time": _stamp(row),
            "started_at": _stamp(row), "source": {"topic": "replay", "partition": 0,
                                                   "offset": row}}  # fmt: skip


def _results(out: Path, rel: str, alerts: list[dict], rows: int = ROWS) -> None:
    """What `anomstream replay -o` writes for one file: scores CSV and alert JSONL."""
    _write_csv(out / rel, ["timestamp", "x", "anomaly_score"],
               [[_stamp(i), float(i), 0.0] for i in range(rows)])  # fmt: skip
    (out / rel).with_suffix(".alerts.jsonl").write_bytes(
        b"".join(orjson.dumps(a) + b"\n" for a in alerts)
    )


def _labels(path: Path, anomalous: range, rows: int = ROWS, column: str = "label") -> None:
    _write_csv(path, ["timestamp", "x", column],
               [[_stamp(i), float(i), int(i in anomalous)] for i in range(rows)])  # fmt: skip


@pytest.fixture
def results(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    # a: one alert rows 6..11 over the episode 5..9, resolved 3 rows after it.
    _results(out, "plant/a.csv", [_alert("a1", "firing", 6), _alert("a1", "resolved", 12)])
    # b: a false alert rows 2..3, the episode 14..17 missed.
    _results(out, "plant/b.csv", [_alert("b1", "firing", 2), _alert("b1", "resolved", 4)])
    return out


def _evaluate(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["evaluate", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_labelled_csv_directory_gives_exact_numbers(
    tmp_path: Path, results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _labels(tmp_path / "in/plant/a.csv", range(5, 10), column="fault")
    _labels(tmp_path / "in/plant/b.csv", range(14, 18), column="fault")
    report = _evaluate(capsys, str(results), "--labels", str(tmp_path / "in"),
                       "--label-column", "fault")  # fmt: skip
    a, b, total = report["files"]["plant/a.csv"], report["files"]["plant/b.csv"], report["total"]
    assert a["counts"] == {
        "rows": 20, "anomalous_rows": 5, "tp_rows": 4, "fp_rows": 2, "alerts": 1,
        "false_alerts": 0, "clean_seconds": 900.0, "clean_seconds_in_alert": 120.0,
        "clean_rows": 15, "fn_rows": 1,
    }  # fmt: skip
    assert a["precision"] == pytest.approx(4 / 6) and a["recall"] == pytest.approx(0.8)
    assert a["episodes"][0]["delay_rows"] == 1 and a["episodes"][0]["delay_seconds"] == 60.0
    assert a["max_resolution_rows"] == 3
    assert b["recall"] == 0.0 and b["false_alerts_per_10k"] == pytest.approx(10_000 / 16)
    assert b["episodes"][0]["detected"] is False
    assert total["counts"]["rows"] == 40 and total["counts"]["anomalous_rows"] == 9
    assert total["recall"] == pytest.approx(4 / 9)
    assert total["precision"] == pytest.approx(4 / 8)
    assert total["false_alarm_rate"] == pytest.approx(4 / 31)
    assert total["false_alerts_per_10k"] == pytest.approx(10_000 / 31)
    assert total["clean_time_in_alert"] == pytest.approx(240 / 1860)
    assert total["detected_episodes"] == 1 and total["mean_delay_rows"] == 1.0


def test_json_episodes_and_the_table(
    tmp_path: Path, results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    episodes = tmp_path / "episodes.json"
    episodes.write_text(json.dumps({"plant/a.csv": [[5, 9]], "plant/b": [[14, 17]]}))
    report = _evaluate(capsys, str(results), "--labels", str(episodes))
    assert report["total"]["recall"] == pytest.approx(4 / 9)
    assert main(["evaluate", str(results), "--labels", str(episodes)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["file", "rows", "anom", "prec"]
    assert table[1].split() == ["plant/a.csv", "20", "5", "0.667", "0.800", "0.727", "0.133",
                                "0.200", "1/1", "1.0", "0.00", "13.33", "3"]  # fmt: skip
    assert table[3].split()[:5] == ["total", "(2", "files)", "40", "9"]


def test_one_labelled_csv_for_one_results_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    _results(out, "m.csv", [_alert("x", "firing", 15)])  # open at the end
    _labels(tmp_path / "m.csv", range(16, 20))
    report = _evaluate(capsys, str(out), "--labels", str(tmp_path / "m.csv"))
    m = report["total"]
    assert (m["counts"]["tp_rows"], m["counts"]["fp_rows"], m["unresolved_episodes"]) == (4, 1, 1)
    assert m["episodes"][0]["resolution_rows"] is None


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: None, "no such labels file"),
        (lambda d: _labels(d / "in/plant/a.csv", range(5, 10), rows=19), "19 rows, but the results have 20"),
        (lambda d: _write_csv(d / "in/plant/a.csv", ["label"], [["x"]] * ROWS), "label 'x' is not a number"),
        (lambda d: _write_csv(d / "in/plant/a.csv", ["value"], [[1]] * ROWS), "no 'label' column"),
        (lambda d: _write_csv(d / "in/plant/a.csv", ["timestamp", "label"],
                              [[_stamp(i + 1), 0] for i in range(ROWS)]), "is not the results' row 0"),
    ],
)  # fmt: skip
def test_bad_labels_are_one_line_errors(
    tmp_path: Path, results: Path, capsys: pytest.CaptureFixture[str], setup, message: str
) -> None:
    (tmp_path / "in").mkdir()
    setup(tmp_path)
    assert main(["evaluate", str(results), "--labels", str(tmp_path / "in")]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("episodes", "message"),
    [
        ({"plant/a.csv": [[5, 9]]}, "no episodes for 'plant/b.csv'"),
        ({"plant/a.csv": [[5, 20]], "plant/b.csv": []}, "not inside rows 0..19"),
        ({"plant/a.csv": [[5]], "plant/b.csv": []}, "pairs"),
    ],
)
def test_bad_episodes_are_one_line_errors(
    tmp_path: Path, results: Path, capsys: pytest.CaptureFixture[str], episodes: dict,
    message: str,
) -> None:  # fmt: skip
    path = tmp_path / "episodes.json"
    path.write_text(json.dumps(episodes))
    assert main(["evaluate", str(results), "--labels", str(path)]) == 1
    assert message in capsys.readouterr().err


def test_missing_results_and_alerts_are_errors(
    tmp_path: Path, results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = tmp_path / "e.json"
    labels.write_text("{}")
    assert main(["evaluate", str(tmp_path / "nowhere"), "--labels", str(labels)]) == 1
    assert "no such directory" in capsys.readouterr().err
    (results / "plant/b.alerts.jsonl").unlink()
    assert main(["evaluate", str(results), "--labels", str(labels)]) == 1
    assert "b.alerts.jsonl: no such file" in capsys.readouterr().err
    (results / "plant/b.csv").unlink()
    (results / "plant/a.alerts.jsonl").write_text('{"status": "firing"}\n')
    assert main(["evaluate", str(results), "--labels", str(labels)]) == 1
    assert "a.alerts.jsonl:1: not an alert document" in capsys.readouterr().err


def test_from_row_scores_after_the_history_only(
    tmp_path: Path, results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    episodes = tmp_path / "episodes.json"
    episodes.write_text(json.dumps({"plant/a.csv": [[5, 9]], "plant/b.csv": [[14, 17]]}))
    report = _evaluate(capsys, str(results), "--labels", str(episodes), "--from-row", "8")
    a, b = report["files"]["plant/a.csv"], report["files"]["plant/b.csv"]
    assert a["counts"]["rows"] == 12 and a["counts"]["tp_rows"] == 2  # rows 8, 9 of a1
    assert a["counts"]["alerts"] == 0  # a1 fired at row 6, in the history
    assert b["counts"]["false_alerts"] == 0 and b["counts"]["fp_rows"] == 0
    assert main(["evaluate", str(results), "--labels", str(episodes), "--from-row", "21"]) == 1
    assert "--from-row 21: the results have 20 rows" in capsys.readouterr().err
