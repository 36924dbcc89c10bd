"""Cost of a detector in replay: readings per second on one core, pickled state per series.

    python bench/nab_cost.py                    # the registry's default detector
    python bench/nab_cost.py --detector hst

Throughput is measured as the service drives a sensor's model (`nab_drive.drive`: the first
`detector.warmup` readings learned only, then score then learn, one `{"value": v}` dict per
reading) in this single process, over every NAB file. State size is `len(pickle.dumps(model))` after the first 10,000 readings of each NAB file
that long, plus a white-noise series (the least compressible signal); the largest is reported.
"""

from __future__ import annotations

import argparse
import pickle
import random
import sys
import time
from pathlib import Path

import numpy as np
from nab_drive import drive

from anomstream.detectors.registry import build_detector
from anomstream.evaluation.nab_corpus import load_windows, read_series
from anomstream.stream.config import load_config

NAB = Path(__file__).resolve().parents[2] / "shared/datasets/nab"
STATE_READINGS = 10_000


def series() -> dict[str, np.ndarray]:
    keys = sorted(load_windows(NAB / "labels/combined_windows.json"))
    out = {key: read_series(NAB / "data" / key)[1]["value"] for key in keys}
    rng = random.Random(0)
    out["synthetic/white_noise"] = np.array([rng.gauss(0.0, 1.0) for _ in range(STATE_READINGS)])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detector", default="default")
    parser.add_argument("--params", default="{}")
    args = parser.parse_args()
    import json

    params = json.loads(args.params)
    data = series()
    nab = {k: v for k, v in data.items() if not k.startswith("synthetic/")}
    readings = sum(len(v) for v in nab.values())
    warmup = load_config(environ={}, overrides={"state.enabled": False}).detector.warmup
    started = time.process_time()  # CPU time of this process: per-core throughput
    for values in nab.values():
        drive(values, build_detector(args.detector, params), warmup)
    cpu = time.process_time() - started
    sizes = {}
    for key, values in data.items():
        if len(values) < STATE_READINGS:
            continue
        model = build_detector(args.detector, params)
        for v in values[:STATE_READINGS].tolist():
            model.learn_one({"value": v})
        sizes[key] = len(pickle.dumps(model))
    worst = max(sizes, key=sizes.__getitem__)
    print(f"detector: {args.detector} {params or ''}")
    print(
        f"throughput: {readings} readings in {cpu:.1f} s CPU = {readings / cpu:,.0f} readings/s/core"
    )
    print(
        f"pickled state after {STATE_READINGS:,} readings: max {sizes[worst]:,} B ({worst}), "
        f"median {int(np.median(list(sizes.values()))):,} B over {len(sizes)} series"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
