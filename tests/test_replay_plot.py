"""`anomstream replay --plot`: a panel per sensor, alerts drawn on the sensors they name."""

from __future__ import annotations

from pathlib import Path

import pytest

from anomstream.evaluation.plot import AlertSpan, alert_spans, event_datetimes
from anomstream.stream.cli import main
from replay_helpers import SHIFT, write_shift_series


def alert(ident: str, status: str, row: int, sensors: list[str], severity: str = "warning") -> dict:
    return {
        "alert_id": ident, "status": status, "severity": severity,
        "sensors": [{"name": s, "score": 0.99999, "contribution": 1 / len(sensors)}
                    for s in sensors],
        "source": {"topic": "replay", "partition": 0, "offset": row},
    }


def test_spans_run_from_firing_to_resolved_on_the_named_sensors_only() -> None:
    alerts = [
        alert("a", "firing", 10, ["temp", "elsewhere"], "critical"),
        alert("b", "firing", 20, ["vib"]),
        alert("b", "resolved", 25, ["vib"]),
        alert("a", "resolved", 30, ["temp", "elsewhere"], "critical"),
        alert("c", "firing", 50, ["*"]),  # machine-wide: every sensor; never resolved
    ]
    spans = alert_spans(alerts, ["temp", "vib", "load"], n_rows=100)
    open_c = AlertSpan("c", "warning", 50, 99, False)  # to the last row
    assert spans == {
        "temp": [AlertSpan("a", "critical", 10, 30, True), open_c],
        "vib": [AlertSpan("b", "warning", 20, 25, True), open_c],
        "load": [open_c],
    }


def test_epoch_seconds_become_datetimes() -> None:
    assert str(event_datetimes([1_700_000_000.25])[0]) == "2023-11-14T22:13:20.250000"


def test_plot_of_a_multi_column_epoch_file_with_an_alert(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    source = write_shift_series(tmp_path / "in/press.csv")  # epoch seconds
    labels = tmp_path / "windows.json"
    labels.write_text('{"press.csv": [["2023-11-15 09:40:00", "2023-11-15 10:40:00"]]}')
    out = tmp_path / "out"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ANOMSTREAM_DETECTOR__WARMUP", "50")
        assert main(["replay", str(source), "-o", str(out), "--plot", "--labels", str(labels),
                     "--no-progress"]) == 0
    assert (out / "press.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    first = (out / "press.alerts.jsonl").read_text().splitlines()[0]
    assert f'"offset":{SHIFT.start}' in first and '"name":"temp"' in first
