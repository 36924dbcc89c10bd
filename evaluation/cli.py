"""Sub-commands `anomstream replay` and `anomstream nab-score`."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anomstream.stream.errors import AnomstreamError
from anomstream.stream.options import add_config_flags, config_from_args

if TYPE_CHECKING:
    from anomstream.evaluation.nab_corpus import DataFile
    from anomstream.evaluation.nab_scorer import ProfileResult
    from anomstream.evaluation.replay import ReplayedSeries

__all__ = ["register", "run_nab_score", "run_replay"]

REPLAY_HELP = """\
Run CSV time series through the service's own pipeline offline: the same decoding, models and
alert policy as `anomstream run`, one code path.

INPUT is a CSV file or a directory searched recursively for *.csv. Each file is one machine,
named by its path relative to INPUT without the suffix (`realKnownCause/nyc_taxi`), and each
column other than the timestamp is one of its sensors (columns `anomaly_score` and `label` are
skipped); every model the service runs for a machine sees them (per-sensor models, and the
machine-wide one where configured). Row i becomes the record a producer would send: topic `replay`, partition 0, offset i,
key = machine id, value = the JSON telemetry document (field names from `telemetry.*`),
timestamp = event time in ms. An empty or non-numeric cell leaves that sensor out of that
reading; a row the service would refuse (say an infinite value, or no value at all) is a dead
letter with the decoder's reason, counted on stderr.

Timestamps (column `timestamp`, or --timestamp-column) are ISO-8601 (a zone-less time is UTC,
as NAB's `2014-04-10 00:00:00`) or epoch seconds / milliseconds, told apart by magnitude as the
service does (`telemetry.timestamp_unit`). A missing column or a timestamp that cannot be
parsed stops the replay with the file, row and column named (exit 1).

Per input file, in OUTPUT/<same relative path>:
  <name>.csv           NAB's results format: timestamp, the value columns, anomaly_score = the
                       row's machine score (0 during warm-up), so `anomstream nab-score OUTPUT`
                       scores it;
  <name>.alerts.jsonl  one alert per line, exactly the `anomstream.alert/v1` documents the
                       service would publish (firing and resolved; `source.offset` is the row),
                       so `anomstream nab-score OUTPUT --alerts` scores them. `detected_at` is
                       the latest event time in the alert's batch (rows go through in batches
                       of kafka.max_poll_records): deterministic, not a wall clock;
  <name>.png           with --plot: one panel per sensor (own y-axis) with each alert shaded
                       from firing to resolved on the sensors it names and its firing reading
                       marked, a panel of the machine score against alerts.threshold, and the
                       label windows of --labels shaded.

The detector, its parameters, templates, warm-up and the alert policy come from the same
configuration the service uses (--config, ANOMSTREAM_* environment, --detector); templates
match `machine = "<relative path>"` patterns. No broker and no checkpoint signing key needed.

example:
  anomstream replay nab/data -o results --plot --labels nab/labels/combined_windows.json
  anomstream nab-score results --nab nab --alerts
"""

NAB_HELP = """\
Score a results directory with the Numenta Anomaly Benchmark's method.

Raw mode (default): RESULTS_DIR holds one CSV with an `anomaly_score` column per NAB data file,
named as NAB names them (<category>/<detector>_<name>.csv) or as `anomstream replay` writes them
(<category>/<name>.csv). For each profile of NAB's config/profiles.json the threshold is optimised
over the whole corpus: a detector's best case.

--alerts: RESULTS_DIR is a replay output directory, and what is scored are its alert files
(<category>/<name>.alerts.jsonl): a file's detections are the rows (`source.offset`) of its
firing alerts, at a fixed threshold and otherwise NAB's rules (probation, earliest detection per
window, sigmoid-weighted false positives). That is what a user of the configuration receives.

Either way the printed score is normalised (null detector 0, perfect detector 100), per profile,
with the windows hit (TP), missed (FN) and the false positives (FP); --json prints the same.

example:
  anomstream replay nab/data -o results
  anomstream nab-score results --nab nab            # raw scores, best threshold
  anomstream nab-score results --nab nab --alerts   # the alerts of the configuration
"""


def register(subparsers: Any) -> None:
    replay = subparsers.add_parser(
        "replay",
        help="run CSV files through the service's pipeline offline (scores, alerts, plots)",
        description=REPLAY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay.add_argument("input", metavar="INPUT", type=Path, help="CSV file or directory of CSVs")
    replay.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        type=Path,
        required=True,
        help="directory the scored CSVs, alert JSONL files (and PNGs) are written to",
    )
    replay.add_argument(
        "--timestamp-column",
        metavar="NAME",
        default="timestamp",
        help="column holding the event time: ISO-8601 or epoch s/ms (default: timestamp)",
    )
    add_config_flags(replay)
    replay.add_argument("--detector", metavar="NAME", help="detector (default: detector.name)")
    replay.add_argument(
        "--plot",
        action="store_true",
        help="also write OUTPUT/<relative path>.png per file (needs matplotlib)",
    )
    replay.add_argument(
        "--labels",
        metavar="WINDOWS_JSON",
        type=Path,
        help="NAB combined_windows.json: shade the label windows in plots",
    )
    replay.add_argument("--no-progress", action="store_true", help="no progress bar")
    replay.set_defaults(func=run_replay)

    nab = subparsers.add_parser(
        "nab-score",
        help="score a results directory with the NAB method",
        description=NAB_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    nab.add_argument("results", metavar="RESULTS_DIR", type=Path)
    nab.add_argument(
        "--nab",
        metavar="DIR",
        type=Path,
        required=True,
        help="NAB checkout or copy with data/, labels/ and config/",
    )
    nab.add_argument(
        "--alerts",
        action="store_true",
        help="score the firing alerts of replay's *.alerts.jsonl files (fixed threshold)",
    )
    nab.add_argument("--json", action="store_true", help="print the results as JSON")
    nab.set_defaults(func=run_nab_score)


def _label_windows(labels: dict[str, list[tuple[str, str]]], relative: Path) -> list:
    rel = relative.as_posix()
    for key, windows in labels.items():
        if rel == key or key.endswith("/" + rel) or rel.endswith("/" + key):
            return windows
    return []


def _data_rows(path: Path) -> int:
    with open(path, "rb") as f:
        return max(sum(1 for _ in f) - 1, 0)  # minus the header


def _report_dead_letters(series: ReplayedSeries) -> None:
    """One stderr line per file with dead letters: count, reasons, the first row and why."""
    dead = series.dead_letters
    if not dead:
        return
    reasons = Counter(d.reason for d in dead)
    first = dead[0]
    print(
        f"replay: {series.relative_path.as_posix()}: {len(dead)} dead letter(s) "
        f"({', '.join(f'{r} x{n}' for r, n in reasons.most_common())}); first at data row "
        f"{first.offset + 1}: {first.reason}: {first.detail}",
        file=sys.stderr,
    )


def run_replay(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from anomstream.evaluation.nab_corpus import load_windows
    from anomstream.evaluation.replay import find_inputs, iter_replays, write_results

    # Replay keeps no state between runs: the checkpoint settings (and their signing key,
    # required when enabled) do not apply, so an offline run needs no secret.
    config = config_from_args(args, **{"state.enabled": False})
    try:
        inputs = find_inputs(args.input)
    except FileNotFoundError as exc:
        raise AnomstreamError(str(exc)) from None
    if not inputs:
        raise AnomstreamError(f"{args.input}: no CSV files")
    labels = load_windows(args.labels) if args.labels else {}
    if args.plot:
        from anomstream.evaluation.plot import plot_series
    total = sum(_data_rows(path) for path, _ in inputs)
    alerts = dead = 0
    with tqdm(
        total=total, unit="reading", unit_scale=True, disable=args.no_progress, desc="replay"
    ) as bar:
        try:
            for series in iter_replays(inputs, config, bar.update, args.timestamp_column):
                write_results(series, args.output)
                alerts += sum(1 for a in series.alerts if a["status"] == "firing")
                dead += len(series.dead_letters)
                _report_dead_letters(series)
                if args.plot:
                    target = (args.output / series.relative_path).with_suffix(".png")
                    windows = _label_windows(labels, series.relative_path)
                    plot_series(series, target, config, windows)
        except ValueError as exc:  # a malformed CSV: name it, no traceback
            raise AnomstreamError(str(exc)) from None
    print(
        f"replay: {len(inputs)} file(s), {total} readings, {alerts} alert(s) fired, "
        f"{dead} dead letter(s) -> {args.output}",
        file=sys.stderr,
    )
    return 0


def _score(
    args: argparse.Namespace, corpus: dict[str, DataFile]
) -> tuple[dict[str, ProfileResult], int]:
    """(results per profile, files scored): raw scores, or the firing alerts with --alerts."""
    from anomstream.evaluation.nab_alerts import score_alert_rows
    from anomstream.evaluation.nab_corpus import (
        ALERTS_SUFFIX,
        match_results,
        profiles_in,
        read_firing_rows,
        read_scores,
    )
    from anomstream.evaluation.nab_scorer import score_corpus

    profiles = profiles_in(args.nab)
    found = match_results(args.results, corpus, ALERTS_SUFFIX if args.alerts else ".csv")
    if not found:
        kind = "alerts file (*.alerts.jsonl)" if args.alerts else "results file"
        raise AnomstreamError(f"{args.results}: no {kind} matches a NAB data file")
    missing = sorted(set(corpus) - set(found))
    if missing:
        print(
            f"nab-score: no results for {len(missing)} of {len(corpus)} data files "
            f"(scoring the other {len(found)}), e.g. {missing[0]}",
            file=sys.stderr,
        )
    scored = {key: corpus[key] for key in found}
    try:
        if args.alerts:
            rows = {k: read_firing_rows(p) for k, p in found.items()}
            return score_alert_rows(scored, rows, profiles), len(found)
        raw = {k: read_scores(p) for k, p in found.items()}
        return score_corpus(scored, raw, profiles), len(found)
    except ValueError as exc:  # unreadable results, or rows that do not match the data
        raise AnomstreamError(str(exc)) from None


def run_nab_score(args: argparse.Namespace) -> int:
    from anomstream.evaluation.nab_corpus import load_corpus

    try:
        corpus = load_corpus(args.nab)
        results, files = _score(args, corpus)
    except OSError as exc:
        raise AnomstreamError(f"--nab {args.nab}: {exc}") from None
    mode = "alerts" if args.alerts else "raw"
    if args.json:
        print(
            json.dumps(
                {
                    "files": files,
                    "mode": mode,
                    "profiles": {k: asdict(v) for k, v in results.items()},
                },
                indent=2,
            )
        )
        return 0
    what = "firing alerts at the configuration's policy" if args.alerts else "raw scores"
    print(
        f"NAB score of {args.results}, {mode}: {what} ({files} files, "
        f"{next(iter(results.values())).windows} windows)"
    )
    print(f"{'profile':<20} {'score':>7} {'threshold':>14} {'TP':>4} {'FN':>4} {'FP':>6}")
    for name, r in results.items():
        print(f"{name:<20} {r.score:7.2f} {r.threshold:14.10g} {r.tp:4d} {r.fn:4d} {r.fp:6d}")
    return 0
