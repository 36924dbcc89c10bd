"""Sub-commands `anomstream replay` and `anomstream nab-score`."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from anomstream.stream.errors import AnomstreamError
from anomstream.stream.options import add_config_flags, config_from_args

__all__ = ["register", "run_nab_score", "run_replay"]

REPLAY_HELP = """\
Run the configured detector over CSV time series offline and write anomaly scores.

INPUT is a CSV file or a directory searched recursively for *.csv. Each file needs a `timestamp`
column and one or more value columns; every value column gets its own model (as every sensor does
in the service), readings are scored before they are learned, and a row's score is the highest
column score. For each input file, OUTPUT/<same relative path> is written in NAB's results format
`timestamp,value,anomaly_score` (scores in [0, 1]), so `anomstream nab-score OUTPUT` scores it.
The detector, its parameters, templates, warm-up and the alert policy come from the same
configuration the service uses (--config, ANOMSTREAM_* environment, --detector); each file is a
machine and each column a sensor, so templates match `machine = "<relative path>"` patterns.
"""

NAB_HELP = """\
Score a results directory with the Numenta Anomaly Benchmark's method.

RESULTS_DIR holds one CSV with an `anomaly_score` column per NAB data file, named as NAB names
them (<category>/<detector>_<name>.csv) or as `anomstream replay` writes them
(<category>/<name>.csv). For each profile of NAB's config/profiles.json the threshold is optimised
over the whole corpus; the printed score is normalised (null detector 0, perfect detector 100).
"""


def register(subparsers: Any) -> None:
    replay = subparsers.add_parser(
        "replay",
        help="run the detector over CSV files offline (NAB results format)",
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
        help="directory the scored CSVs (and PNGs) are written to",
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
    with tqdm(
        total=total, unit="reading", unit_scale=True, disable=args.no_progress, desc="replay"
    ) as bar:
        try:
            for series in iter_replays(inputs, config, bar.update):
                write_results(series, args.output)
                if args.plot:
                    target = (args.output / series.relative_path).with_suffix(".png")
                    windows = _label_windows(labels, series.relative_path)
                    plot_series(series, target, config, windows)
        except ValueError as exc:  # a malformed CSV: name it, no traceback
            raise AnomstreamError(str(exc)) from None
    print(f"replay: {len(inputs)} file(s), {total} readings -> {args.output}", file=sys.stderr)
    return 0


def run_nab_score(args: argparse.Namespace) -> int:
    from anomstream.evaluation.nab_corpus import load_corpus, match_results, profiles_in, read_scores
    from anomstream.evaluation.nab_scorer import score_corpus

    try:
        corpus = load_corpus(args.nab)
        profiles = profiles_in(args.nab)
    except OSError as exc:
        raise AnomstreamError(f"--nab {args.nab}: {exc}") from None
    found = match_results(args.results, corpus)
    if not found:
        raise AnomstreamError(f"{args.results}: no results file matches a NAB data file")
    missing = sorted(set(corpus) - set(found))
    if missing:
        print(
            f"nab-score: no results for {len(missing)} of {len(corpus)} data files "
            f"(scoring the other {len(found)}), e.g. {missing[0]}",
            file=sys.stderr,
        )
    scored = {key: corpus[key] for key in found}
    try:
        results = score_corpus(scored, {k: read_scores(p) for k, p in found.items()}, profiles)
    except ValueError as exc:  # unreadable results, or rows that do not match the data
        raise AnomstreamError(str(exc)) from None
    if args.json:
        print(
            json.dumps(
                {"files": len(found), "profiles": {k: asdict(v) for k, v in results.items()}},
                indent=2,
            )
        )
        return 0
    print(
        f"NAB score of {args.results} ({len(found)} files, "
        f"{next(iter(results.values())).windows} windows)"
    )
    print(f"{'profile':<20} {'score':>7} {'threshold':>14} {'TP':>4} {'FN':>4} {'FP':>6}")
    for name, r in results.items():
        print(f"{name:<20} {r.score:7.2f} {r.threshold:14.10g} {r.tp:4d} {r.fn:4d} {r.fp:6d}")
    return 0
