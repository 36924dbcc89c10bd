"""Research harness: run a detector over the NAB corpus in-process and score it, with 2-fold split.

Replays exactly as `anomstream replay` does (`anomstream.evaluation.replay.replay_series`: one model per
series, `{"value": v}`, score then learn), in parallel over files, and scores with the same
`anomstream.evaluation.nab_scorer`. The 2-fold split alternates files within each category (sorted by
name), so both halves see every kind of series.

    python bench/nab_eval.py --detector default                      # the registry's default
    python bench/nab_eval.py --cls detectors.x:Cls --params '{"a": 1}'  # any class, any params
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
from pathlib import Path

import numpy as np


from anomstream.detectors.entities import Entity
from anomstream.evaluation.nab_corpus import (
    DataFile,
    load_corpus,
    match_results,
    profiles_in,
    read_scores,
    read_series,
)
from anomstream.evaluation.nab_scorer import Sweep
from anomstream.evaluation.replay import replay_series

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


def make_factory(spec: str, params: Mapping) -> Callable[[str], Entity]:
    """A fresh model per series: a registry name, or `module:Class` for research variants."""
    if ":" in spec:
        module, name = spec.split(":")
        cls = getattr(importlib.import_module(module), name)
        return lambda _column: Entity(cls(**params), spec)
    from anomstream.detectors.registry import build_detector

    return lambda _column: Entity(build_detector(spec, params, seed=0), spec)


def _run_one(job: tuple[str, str, dict]) -> tuple[str, np.ndarray, float]:
    key, spec, params = job
    _, values = read_series(NAB / "data" / key)
    start = time.perf_counter()
    scores = replay_series({"value": values["value"]}, make_factory(spec, params))["value"]
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
    parser.add_argument("--keys", help="comma-separated subset: 'A', 'B' or category prefixes")
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
    if args.detail:
        print_details(corpus, scores, out["standard"]["all"].threshold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
