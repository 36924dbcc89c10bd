"""Sanity check beyond NAB: does a detector catch the faults factory sensors show?

Synthetic sensor: a load cycle (period 288 readings, like a day of 5-minute readings) plus noise.
Each scenario injects one fault at reading 3000 into an otherwise normal 6000-reading series:
spike, level shift, slow drift, stuck sensor (flat line), noise burst. The scores go through the
service's alert policy with the shipped alert config; we report the delay of the first alert after
the onset and the number of alerts elsewhere (false alarms), over several seeds.

    python bench/nab_factory_faults.py [--detector NAME]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys


from anomstream.detectors.policy import AlertPolicy, PolicyState
from anomstream.detectors.registry import build_detector
from anomstream.stream.config import load_config

N, ONSET, PERIOD = 6000, 3000, 288


def normal(rng: random.Random) -> list[float]:
    return [50 + 10 * math.sin(2 * math.pi * i / PERIOD) + rng.gauss(0, 1.0) for i in range(N)]


def inject(kind: str, x: list[float], rng: random.Random) -> tuple[list[float], int]:
    """The faulty series and the fault's last reading."""
    y = list(x)
    if kind == "spike":
        y[ONSET] += 25
        return y, ONSET
    if kind == "level shift":
        for i in range(ONSET, N):
            y[i] += 8
        return y, N - 1
    if kind == "drift":
        for i in range(ONSET, N):
            y[i] += 0.02 * (i - ONSET)
        return y, N - 1
    if kind == "stuck":
        for i in range(ONSET, ONSET + 300):
            y[i] = y[ONSET - 1]
        return y, ONSET + 299
    if kind == "noise burst":
        for i in range(ONSET, ONSET + 100):
            y[i] += rng.gauss(0, 6.0)
        return y, ONSET + 99
    raise ValueError(kind)


def alerts(
    detector: str, params: dict, values: list[float], warmup: int, policy: AlertPolicy
) -> list[int]:
    model = build_detector(detector, params)
    state = PolicyState()
    fired = []
    for i, v in enumerate(values):
        x: dict = {"value": v}
        score = model.score_one(x)
        model.learn_one(x)
        if i >= warmup:
            t = policy.step(state, score, float(i), {"value": score})
            if t is not None and t.status == "firing":
                fired.append(i)
    return fired


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detector", default="default")
    parser.add_argument("--params", default="{}", help="JSON keyword arguments")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    config = load_config(overrides={"state.enabled": False})  # offline: no checkpoints
    policy = AlertPolicy.from_config(config.alerts)
    params = json.loads(args.params)
    print(f"detector {args.detector}, alert threshold {policy.threshold}, min_run {policy.min_run}")
    for kind in ("none", "spike", "level shift", "drift", "stuck", "noise burst"):
        delays, false_alarms = [], 0
        for seed in range(args.seeds):
            rng = random.Random(seed)
            x = normal(rng)
            end = ONSET - 1
            if kind != "none":
                x, end = inject(kind, x, rng)
            fired = alerts(args.detector, params, x, config.detector.warmup, policy)
            hits = [i for i in fired if ONSET <= i <= end + 50]
            false_alarms += len(fired) - len(hits)
            if kind != "none":
                delays.append(hits[0] - ONSET if hits else None)
        shown = ", ".join("miss" if d is None else str(d) for d in delays) or "-"
        print(f"{kind:>12}: first-alert delay per seed [{shown}]  false alarms {false_alarms}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
