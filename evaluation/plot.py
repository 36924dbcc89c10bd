"""One PNG per replayed series: signal, score, alert threshold, alerts, label windows.

Alerts are what the service would raise: the calibrated scores run through the configured
`anomstream.detectors.policy.AlertPolicy` (thresholds, minimum run, hysteresis, cooldown), so the plot shows
alarms an operator would actually have received, not every reading above the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from anomstream.detectors.policy import AlertPolicy, PolicyState
from anomstream.evaluation.replay import ReplayedSeries
from anomstream.stream.config import Config
from anomstream.stream.errors import AnomstreamError

__all__ = ["alert_rows", "plot_series"]


def alert_rows(series: ReplayedSeries, config: Config, warmup: int) -> list[int]:
    """Rows at which the alert policy fires, skipping the warm-up readings as the service does."""
    policy = AlertPolicy.from_config(config.alerts)
    state = PolicyState()
    fired = []
    for i in range(warmup, len(series.scores)):
        per_column = {c: float(s[i]) for c, s in series.column_scores.items()}
        transition = policy.step(state, float(series.scores[i]), float(i), per_column)
        if transition is not None and transition.status == "firing":
            fired.append(i)
    return fired


def _nines(score: np.ndarray | float) -> np.ndarray:
    return -np.log10(np.clip(1.0 - np.asarray(score, dtype=float), 1e-16, 1.0))


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
    times = np.array(series.timestamps, dtype="datetime64[us]")
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(14, 6), height_ratios=[3, 2])
    for column, values in series.values.items():
        top.plot(times, values, lw=0.7, label=column)
    # Calibrated scores differ in their nines (0.999 vs 0.9999999), which a linear axis hides.
    bottom.plot(times, _nines(series.scores), lw=0.7, color="tab:purple", label="anomaly score")
    bottom.axhline(
        _nines(config.alerts.threshold),
        color="tab:red",
        ls="--",
        lw=0.8,
        label=f"threshold {config.alerts.threshold}",
    )
    for start, end in windows:
        for ax in (top, bottom):
            ax.axvspan(
                np.datetime64(start, "us"), np.datetime64(end, "us"), color="gold", alpha=0.3
            )
    alerts = alert_rows(series, config, config.detector.warmup)
    if alerts:
        first = next(iter(series.values.values()))
        top.scatter(
            times[alerts],
            first[alerts],
            color="tab:red",
            marker="v",
            zorder=3,
            label=f"alerts ({len(alerts)})",
        )
    top.set_title(series.relative_path.as_posix())
    top.legend(loc="upper left", fontsize="small")
    bottom.set_ylabel("nines: -log10(1 - score)")
    bottom.set_ylim(bottom=0.0)
    bottom.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=90)
    plt.close(fig)
    return target
