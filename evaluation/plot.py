"""One PNG per replayed series: a panel per sensor, the score panel, alerts and label windows.

Each sensor gets its own panel and y-axis (sensors of one machine rarely share a unit or a
scale). The alerts are the documents the pipeline published during replay, so the plot shows
what an operator would have received: each alert is shaded from its firing to its resolving
reading on the panels of the sensors it names, and its firing reading is marked there. The
score panel shows the machine score in "nines" against the alert threshold. Time is the event
time the decoder read (ISO-8601 or epoch timestamps alike); label windows are shaded on every
panel.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anomstream.detectors.entities import MACHINE_WIDE
from anomstream.evaluation.replay import ReplayedSeries
from anomstream.stream.config import Config
from anomstream.stream.errors import AnomstreamError

__all__ = ["AlertSpan", "alert_spans", "event_datetimes", "plot_series"]


@dataclass(frozen=True)
class AlertSpan:
    """One alert episode on one sensor, in rows (offsets) of the replayed file."""

    alert_id: str
    severity: str
    firing_row: int
    end_row: int  # the resolving reading, or the last row if the alert is still open
    resolved: bool


def alert_spans(
    alerts: Iterable[Mapping[str, Any]], sensors: Iterable[str], n_rows: int
) -> dict[str, list[AlertSpan]]:
    """Sensor -> the spans of the alerts that name it, firing to resolved, in firing order.

    A firing alert's `sensors` decide where it is drawn; its `resolved` twin (same `alert_id`)
    ends the span. An alert naming the machine-wide entity (`*`) is drawn on every sensor;
    names that are not plotted sensors are skipped.
    """
    names = list(sensors)
    spans: dict[str, list[AlertSpan]] = {name: [] for name in names}
    open_: dict[str, tuple[int, str, list[str]]] = {}  # alert_id -> (row, severity, sensors)
    order: list[tuple[str, int, str, list[str], int, bool]] = []
    for alert in alerts:
        ident, row = alert["alert_id"], int(alert["source"]["offset"])
        if alert["status"] == "firing":
            named = [s["name"] for s in alert["sensors"]]
            on = names if MACHINE_WIDE in named else [n for n in names if n in named]
            open_[ident] = (row, alert["severity"], on)
        elif ident in open_:
            first, severity, on = open_.pop(ident)
            order.append((ident, first, severity, on, row, True))
    order += [(i, first, sev, on, n_rows - 1, False) for i, (first, sev, on) in open_.items()]
    for ident, first, severity, on, end, resolved in sorted(order, key=lambda o: o[1]):
        for name in on:
            spans[name].append(AlertSpan(ident, severity, first, end, resolved))
    return spans


def _nines(score: np.ndarray | float) -> np.ndarray:
    return -np.log10(np.clip(1.0 - np.asarray(score, dtype=float), 1e-16, 1.0))


def event_datetimes(event_times: np.ndarray) -> np.ndarray:
    """Epoch seconds as datetime64[us], the x axis of every panel."""
    return np.round(np.asarray(event_times) * 1e6).astype(np.int64).astype("datetime64[us]")


def plot_series(
    series: ReplayedSeries,
    target: Path,
    config: Config,
    windows: Sequence[tuple[str, str]] = (),
) -> Path:
    """Write the PNG for `series` to `target` and return its path."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a display
        import matplotlib.pyplot as plt
    except ImportError:
        raise AnomstreamError("--plot needs matplotlib: pip install 'anomstream[plot]'") from None
    times = event_datetimes(series.event_times)
    sensors = list(series.values)
    spans = alert_spans(series.alerts, sensors, len(times))
    fig, axes = plt.subplots(
        len(sensors) + 1, 1, sharex=True, squeeze=False,
        # Panels shrink past ~30 sensors: a PNG taller than 60 inches helps nobody.
        figsize=(14, min(1.8 * len(sensors), 60.0) + 2.5),
        height_ratios=[3] * len(sensors) + [2],
    )
    panels, score_ax = list(axes[:, 0][:-1]), axes[-1, 0]
    label_spans = [(np.datetime64(s, "us"), np.datetime64(e, "us")) for s, e in windows]
    for ax in axes[:, 0]:
        for start, end in label_spans:
            ax.axvspan(start, end, color="gold", alpha=0.3, lw=0)
    for ax, name in zip(panels, sensors):
        values = series.values[name]
        ax.plot(times, values, lw=0.7, color="tab:blue")
        ax.set_ylabel(name, rotation=0, ha="right", fontsize="small")
        for n, span in enumerate(spans[name]):
            color = "tab:red" if span.severity == "critical" else "tab:orange"
            ax.axvspan(
                times[span.firing_row], times[span.end_row], color=color, alpha=0.2, lw=0,
                label=None if n else "alert: firing to resolved",
            )
        fired = [s.firing_row for s in spans[name]]
        if fired:
            ax.scatter(
                times[fired], values[fired], color="tab:red", marker="v", zorder=3, s=25,
                label=f"firing reading ({len(fired)})",
            )
            ax.legend(loc="upper left", fontsize="x-small")
    # Calibrated scores differ in their nines (0.999 vs 0.9999999), which a linear axis hides.
    score_ax.plot(times, _nines(series.scores), lw=0.7, color="tab:purple", label="machine score")
    score_ax.axhline(
        _nines(config.alerts.threshold), color="tab:red", ls="--", lw=0.8,
        label=f"threshold {config.alerts.threshold}",
    )
    score_ax.set_ylabel("nines: -log10(1 - score)", fontsize="small")
    score_ax.set_ylim(bottom=0.0)
    score_ax.legend(loc="upper left", fontsize="small")
    firing = sum(1 for a in series.alerts if a["status"] == "firing")
    panels[0].set_title(f"{series.relative_path.as_posix()}: {firing} alert(s)")
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=90)
    plt.close(fig)
    return target
