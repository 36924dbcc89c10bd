"""Research harness: run a detector over the NAB corpus in-process and score it, with 2-fold split.

Drives one model per series as the service's pipeline does (`nab_drive.drive`: the first
`detector.warmup` readings learned only, then score-then-learn of `{"value": v}`), in parallel
over files, and scores with the same `anomstream.evaluation.nab_scorer`. The 2-fold split
alternates files within each category (sorted by name), so both halves see every kind of series.

Raw: the score column at the threshold that suits each part best (and, out of sample, at the
other half's). `--alerts`: what the service sends, too. The shipped `[alerts]` policy is stepped
over each file (`nab_drive.step_policy`) and its firing rows are the detections
(`anomstream.evaluation.nab_alerts.score_alert_rows`), at no threshold search; printed beside
the raw numbers, with the share of time inside an alert outside the label windows.

    python bench/nab_eval.py --detector default --alerts              # the registry's default
    python bench/nab_eval.py --cls anomstream.detectors.x:Cls --params '{"a": 1}'  # any class
    python bench/nab_eval.py --alerts --policy '{"min_run": 1}'        # another alert policy
    python bench/nab_eval.py --results /tmp/nab-default               # score replay output
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
from nab_drive import drive, step_policy
from river.base import AnomalyDetector

from anomstream.detectors.policy import AlertPolicy
from anomstream.evaluation.nab_alerts import score_alert_rows
from anomstream.evaluation.nab_corpus import (
    DataFile,
    load_corpus,
    match_results,
    profiles_in,
    read_scores,
    read_series,
)
from anomstream.evaluation.nab_scorer import Sweep
from anomstream.stream.config import Config, load_config

NAB = Path(__file__).resolve().parents[2] / "shared/datasets/nab"
SHORT = {"standard": "std", "reward_low_FP_rate": "lowFP", "reward_low_FN_rate": "lowFN"}


def folds(keys: list[str]) -> tuple[list[str], list[str]]:
    """Two halves: alternate files within each category, in name order."""
    a, b = [], []
    by_category: dict[str, list[str]] = {}
    for key in sorted(keys):
        by_category.setdefault(key.split("/")[0], []).append(key)
    for members in by_category.values():
        a += members[0::2]
        b += members[1::2]
    return a, b


def make_factory(spec: str, params: Mapping) -> Callable[[], AnomalyDetector]:
    """A fresh model per series: a registry name, or `module:Class` for research variants."""
    if ":" in spec:
        module, name = spec.split(":")
        cls = getattr(importlib.import_module(module), name)
        return lambda: cls(**params)
    from anomstream.detectors.registry import build_detector

    return lambda: build_detector(spec, params, seed=0)


def _config() -> Config:
    return load_config(environ={}, overrides={"state.enabled": False})  # offline: no checkpoints


def _run_one(job: tuple[str, str, dict]) -> tuple[str, np.ndarray, float]:
    key, spec, params = job
    _, values = read_series(NAB / "data" / key)
    start = time.perf_counter()
    scores = drive(values["value"], make_factory(spec, params)(), _config().detector.warmup)
    return key, scores, time.perf_counter() - start


def run_corpus(spec: str, params: Mapping, keys: list[str], workers: int) -> dict[str, np.ndarray]:
    jobs = [(key, spec, dict(params)) for key in keys]
    with ProcessPoolExecutor(workers) as pool:
        out = {key: scores for key, scores, _ in pool.map(_run_one, jobs)}
    return out


def report(corpus: Mapping[str, DataFile], scores: Mapping[str, np.ndarray]) -> dict:
    """Full corpus and both halves: each optimised on itself, and with the other half's threshold."""
    profiles = profiles_in(NAB)
    a, b = folds(list(corpus))
    sweeps = {
        name: Sweep({k: corpus[k] for k in keys}, {k: scores[k] for k in keys})
        for name, keys in (("all", list(corpus)), ("A", a), ("B", b))
    }
    out: dict = {}
    for pname, profile in profiles.items():
        best = {name: sweep.optimise(profile) for name, sweep in sweeps.items()}
        out[pname] = {
            "all": best["all"],
            "A": best["A"],
            "B": best["B"],
            # threshold chosen on the other half: the honest out-of-sample number
            "A|B": sweeps["A"].at_threshold(profile, best["B"].threshold),
            "B|A": sweeps["B"].at_threshold(profile, best["A"].threshold),
        }
    return out


def print_report(out: dict) -> None:
    for pname, parts in out.items():
        cells = "  ".join(f"{k}={r.score:6.2f}" for k, r in parts.items())
        r = parts["all"]
        print(f"{SHORT[pname]:>5}: {cells}  thr={r.threshold:.10g} tp={r.tp} fp={r.fp}")


def alert_report(
    corpus: Mapping[str, DataFile], scores: Mapping[str, np.ndarray], policy: AlertPolicy
) -> dict:
    """Alert level: per profile, the full corpus and both halves at `policy`'s firing rows; and
    the share of rows outside the label windows that are inside an alert."""
    profiles = profiles_in(NAB)
    traces = {key: step_policy(scores[key], policy) for key in corpus}
    a, b = folds(list(corpus))
    out: dict = {}
    for name, keys in (("all", list(corpus)), ("A", a), ("B", b)):
        part = {k: corpus[k] for k in keys}
        out[name] = score_alert_rows(part, {k: traces[k].fired for k in keys}, profiles)
    clean = inside = 0
    for key, data in corpus.items():
        outside = np.ones(data.n_rows, dtype=bool)
        for first, last in data.windows:
            outside[first : last + 1] = False
        clean += int(outside.sum())
        inside += int((traces[key].inside & outside).sum())
    out["clean_share"] = inside / clean
    out["longest"] = max(_longest_run(t.inside) for t in traces.values())
    return out


def _longest_run(flags: np.ndarray) -> int:
    best = run = 0
    for flag in flags.tolist():
        run = run + 1 if flag else 0
        best = max(best, run)
    return best


def print_alerts(raw: dict, alerts: dict, policy: AlertPolicy) -> None:
    print(f"alert level at {policy}")
    for pname in raw:
        cells = "  ".join(
            f"{part}={alerts[part][pname].score:6.2f} (raw {raw[pname][part].score:6.2f})"
            for part in ("all", "A", "B")
        )
        r = alerts["all"][pname]
        print(f"{SHORT[pname]:>5}: {cells}  tp={r.tp} fn={r.fn} fp={r.fp}")
    print(
        f"clean rows inside an alert: {100 * alerts['clean_share']:.2f} %, "
        f"longest alert {alerts['longest']} rows"
    )


def print_details(
    corpus: Mapping[str, DataFile], scores: Mapping[str, np.ndarray], threshold: float
) -> None:
    """Per file at the standard threshold: windows detected, missed, false-positive rows."""
    profile = profiles_in(NAB)["standard"]
    for key in corpus:
        r = Sweep({key: corpus[key]}, {key: scores[key]}).at_threshold(profile, threshold)
        print(f"  {key:<58} tp={r.tp} fn={r.fn} fp={r.fp:3d} raw={r.raw:6.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detector", default="default", help="registry name")
    parser.add_argument("--cls", help="module:Class instead of a registry name")
    parser.add_argument("--params", default="{}", help="JSON keyword arguments")
    parser.add_argument("--results", type=Path, help="score this results directory instead")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--detail", action="store_true", help="per-file breakdown")
    parser.add_argument("--alerts", action="store_true", help="alert level too (shipped [alerts])")
    parser.add_argument("--policy", default="{}", help="JSON overrides of the [alerts] policy")
    args = parser.parse_args()
    corpus = load_corpus(NAB)
    if args.results:
        found = match_results(args.results, corpus)
        scores = {k: read_scores(p) for k, p in found.items()}
    else:
        started = time.perf_counter()
        scores = run_corpus(
            args.cls or args.detector, json.loads(args.params), list(corpus), args.workers
        )
        print(f"replayed in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    out = report(corpus, scores)
    print_report(out)
    if args.alerts:
        policy = replace(AlertPolicy.from_config(_config().alerts), **json.loads(args.policy))
        print_alerts(out, alert_report(corpus, scores, policy), policy)
    if args.detail:
        print_details(corpus, scores, out["standard"]["all"].threshold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
