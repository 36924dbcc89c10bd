"""Tennessee Eastman process: the shipped default config's alerts on the 21 classical faults.

For each fault NN a temporary CSV (in a temporary directory, never in the project) holds
`d00.dat` (500 normal samples, stored transposed) as the machine's history, then `dNN_te.dat`
(960 samples: 1-160 normal, the fault from sample 161 on), 52 columns (XMEAS 1-41, XMV 1-11),
one sample every 180 s. It goes through `anomstream.evaluation.replay.replay_file` with the
shipped default configuration, exactly as `anomstream replay` runs it, and the alerts are scored
with `anomstream.evaluation.alert_metrics` on the 960 test samples:

- detection rate: share of samples 161-960 inside a firing alert;
- delay: from sample 161 to the first firing alert open in the fault, in samples and minutes;
- false-alarm rate: share of samples 1-160 inside an alert; and, for `d00.dat` followed by
  `d00_te.dat`, of all 960 clean test samples (the clean false-alarm rate after warm-up).

Beside each fault: the detection rates of the reference method, offline PCA with T² and Q at
99 % limits fitted on `d00.dat`, computed in the same run (`bench/tep_pca.py`, sample-wise
flags as the protocol counts them), and whether ours is at or above the better of the two; the
same PCA at 99.999 % limits, the nominal level of the alert threshold, for context ("strict":
the protocol's 99 % allows 100 times more false alarms than the threshold's 1 in 100,000); and,
for context, the rates recalled from Chiang, Russell & Braatz's table (see `PUBLISHED_SOURCE`). Issue 10's target: on at least 15 of the 18 faults other than 3, 9
and 15, and false alarms on at most 1 % of clean samples.

    .venv/bin/python bench/tep.py [--data DIR] [--faults 1 2 ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from anomstream.evaluation.alert_metrics import AlertMetrics, alert_intervals, evaluate_alerts
from anomstream.evaluation.replay import replay_file
from anomstream.evaluation.tep_corpus import HISTORY, ONSET, TEST, read_dat, write_run
from anomstream.stream.config import Config, load_config
from tep_pca import PcaMonitor

UNDETECTABLE = (3, 9, 15)  # no published method detects these from the 52 variables

# PCA missed detection rates (T², Q) per fault, 99 % control limits, fitted on d00.dat and
# tested on dNN_te.dat. NOT VERIFIED against the book: these are the values recalled in the
# brief of this benchmark; the search tool found no copy of the table to check them against.
# Check them in the source below before quoting any comparison.
PUBLISHED_SOURCE = (
    "L. H. Chiang, E. L. Russell, R. D. Braatz, Fault Detection and Diagnosis in Industrial "
    "Systems, Springer 2001, missed detection rates of PCA T² and Q on the TEP test sets "
    "(UNVERIFIED transcription)"
)
PUBLISHED_MISSED: dict[int, tuple[float, float]] = {
    1: (0.008, 0.003), 2: (0.020, 0.014), 3: (0.998, 0.991), 4: (0.956, 0.038),
    5: (0.775, 0.746), 6: (0.011, 0.0), 7: (0.085, 0.0), 8: (0.034, 0.024),
    9: (0.994, 0.981), 10: (0.666, 0.659), 11: (0.794, 0.356), 12: (0.029, 0.025),
    13: (0.060, 0.045), 14: (0.158, 0.0), 15: (0.988, 0.973), 16: (0.834, 0.755),
    17: (0.259, 0.108), 18: (0.113, 0.101), 19: (0.996, 0.873), 20: (0.701, 0.550),
    21: (0.736, 0.570),
}  # fmt: skip


def score_run(path: Path, config: Config, faulty: bool) -> tuple[AlertMetrics, bool]:
    """Replay one history+test CSV and score its alerts on the test samples only; also whether
    an alert that fired in the history is still open at the fault's onset (or, in a clean run,
    at the first test sample): then the figures say more about resolving than detecting."""
    series = replay_file(path, Path(path.name), config, timestamp_column="timestamp")
    episodes = [(HISTORY + ONSET, HISTORY + TEST - 1)] if faulty else []
    metrics = evaluate_alerts(
        series.event_times, series.alerts, episodes=episodes, scored_from=HISTORY
    )
    intervals = alert_intervals(series.alerts, series.event_times)
    open_at = HISTORY + ONSET if faulty else HISTORY
    return metrics, any(i.start < HISTORY and i.end > open_at for i in intervals)


def fault_row(
    fault: int, m: AlertMetrics, open_from_history: bool, pca: tuple[float, float]
) -> dict[str, Any]:
    t2, q = PUBLISHED_MISSED[fault]
    best = max(pca)
    episode = m.episodes[0]
    rate = m.recall or 0.0
    return {
        "fault": fault,
        "detection_rate": rate,
        "delay_samples": episode.delay_rows,
        "delay_minutes": None if episode.delay_seconds is None else episode.delay_seconds / 60,
        "false_alarm_rate_pre_onset": m.false_alarm_rate,
        "alerts": m.counts.alerts,
        "alert_open_from_history": open_from_history,
        "pca_t2_detection_rate": round(pca[0], 3),
        "pca_q_detection_rate": round(pca[1], 3),
        "published_t2_detection_rate": round(1.0 - t2, 3),
        "published_q_detection_rate": round(1.0 - q, 3),
        "at_or_above_pca": bool(rate >= best),
        "target_fault": fault not in UNDETECTABLE,
    }


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_data = Path(__file__).resolve().parents[1] / "../shared/datasets/tep"
    parser.add_argument("--data", type=Path, default=default_data, help="the TEP .dat files")
    parser.add_argument("--faults", type=int, nargs="*", default=list(range(1, 22)))
    parser.add_argument("--json", metavar="FILE", type=Path, help="also write the results here")
    args = parser.parse_args()
    # The shipped defaults, nothing from the environment; replay keeps no state.
    config = load_config(environ={}, overrides={"state.enabled": False})
    history = read_dat(args.data / "d00.dat")
    pca = PcaMonitor.fit(history)
    strict = PcaMonitor.fit(history, confidence=config.alerts.threshold)
    clean_t2, clean_q = pca.flags(read_dat(args.data / "d00_te.dat"))
    strict_clean = np.logical_or(*strict.flags(read_dat(args.data / "d00_te.dat"))).mean()
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="anomstream-tep-") as tmp:
        clean_path = Path(tmp) / "d00_te.csv"
        write_run(clean_path, history, read_dat(args.data / "d00_te.dat"))
        clean, clean_open = score_run(clean_path, config, faulty=False)
        print(f"{'fault':>5} {'detect':>7} {'PCA T2':>7} {'PCA Q':>7} {'>=PCA':>6} "
              f"{'delay':>6} {'min':>6} {'FAR<161':>8} {'alerts':>6} {'open':>4} "
              f"{'pub T2':>7} {'pub Q':>7} {'strict':>7}")  # fmt: skip
        for fault in args.faults:
            path = Path(tmp) / f"d{fault:02d}_te.csv"
            test = read_dat(args.data / f"d{fault:02d}_te.dat")
            write_run(path, history, test)
            t2, q = pca.flags(test[ONSET:])
            row = fault_row(fault, *score_run(path, config, faulty=True), (t2.mean(), q.mean()))
            row["pca_strict_detection_rate"] = round(float(np.logical_or(*strict.flags(test[ONSET:])).mean()), 3)
            rows.append(row)
            mark = "yes" if row["at_or_above_pca"] else "no"
            print(
                f"{fault:>5} {row['detection_rate']:7.3f} {row['pca_t2_detection_rate']:7.3f} "
                f"{row['pca_q_detection_rate']:7.3f} {mark + ('' if row['target_fault'] else '*'):>6} "
                f"{_fmt(row['delay_samples'], 'd'):>6} {_fmt(row['delay_minutes'], '.0f'):>6} "
                f"{_fmt(row['false_alarm_rate_pre_onset'], '.3f'):>8} {row['alerts']:>6} "
                f"{'yes' if row['alert_open_from_history'] else '':>4} "
                f"{row['published_t2_detection_rate']:7.3f} {row['published_q_detection_rate']:7.3f} "
                f"{row['pca_strict_detection_rate']:7.3f}"
            )
    targets = [r for r in rows if r["target_fault"]]
    # An alert open since the history covers the onset without having detected it: no win.
    wins = sum(r["at_or_above_pca"] and not r["alert_open_from_history"] for r in targets)
    pre_onset = [r["false_alarm_rate_pre_onset"] for r in rows]
    summary = {
        "faults_at_or_above_pca": wins,
        "target_faults": len(targets),
        "clean_false_alarm_rate": clean.false_alarm_rate,
        "clean_alerts": clean.counts.alerts,
        "clean_alert_open_from_history": clean_open,
        "faults_with_alert_open_from_history": sum(r["alert_open_from_history"] for r in rows),
        "mean_false_alarm_rate_pre_onset": float(np.mean(pre_onset)) if pre_onset else None,
        "seconds": round(time.perf_counter() - started, 1),
        "published_source": PUBLISHED_SOURCE,
        "pca_components": pca.components,
        "pca_clean_false_alarm_rate": {"t2": float(clean_t2.mean()), "q": float(clean_q.mean())},
    }
    print("open: an alert fired in the d00 history is still open at the onset (sample 161)")
    print(f"(* fault 3, 9 or 15: not a target)\nat or above PCA's better statistic on {wins} of "
          f"{len(targets)} target faults (issue 10: at least 15 of 18; a fault whose onset is "
          "under an alert open from the history does not count)")  # fmt: skip
    print(f"clean run d00 + d00_te: false-alarm rate {_fmt(clean.false_alarm_rate, '.4f')} on "
          f"{clean.counts.rows} samples, {clean.counts.alerts} alerts"
          f"{' (one open from the history)' if clean_open else ''} (issue 10: at most 0.01); "
          f"pre-onset mean {_fmt(summary['mean_false_alarm_rate_pre_onset'], '.4f')}")  # fmt: skip
    print(f"PCA T2/Q (this run): {pca.components} components by parallel analysis, 99 % limits; "
          f"its own false-alarm rate on d00_te: T2 {clean_t2.mean():.3f}, Q {clean_q.mean():.3f}")
    strict_wins = sum(
        r["detection_rate"] >= r["pca_strict_detection_rate"] and not r["alert_open_from_history"]
        for r in targets
    )
    summary["pca_strict_clean_false_alarm_rate"] = float(strict_clean)
    summary["faults_at_or_above_pca_strict"] = strict_wins
    print(f"strict: PCA, T2 or Q, at 99.999 % limits (the threshold's nominal level; context, not "
          f"the target): its d00_te false-alarm rate {strict_clean:.3f}; ours at or above it on "
          f"{strict_wins} of {len(targets)} target faults")  # fmt: skip
    print(f"pub T2/Q: {PUBLISHED_SOURCE}\n{summary['seconds']} s")
    if args.json:
        args.json.write_text(json.dumps({"faults": rows, "summary": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
