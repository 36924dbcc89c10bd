"""Grid search over a detector's parameters on the NAB corpus, one line per combination.

Selection must use fold A only (the design half); fold B is printed to check the choice holds.

    python bench/nab_sweep.py --cls detectors.shape_novelty:ShapeNovelty \
        --grid '{"dead_time": [150, 300, 600], "vigilance": [0.05, 0.1]}'
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys


from nab_eval import NAB, load_corpus, report, run_corpus


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cls", default="anomstream.detectors.shape_novelty:ShapeNovelty")
    parser.add_argument("--base", default="{}", help="JSON parameters common to every run")
    parser.add_argument("--grid", required=True, help="JSON: parameter -> list of values")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    corpus = load_corpus(NAB)
    base, grid = json.loads(args.base), json.loads(args.grid)
    for combo in itertools.product(*grid.values()):
        params = {**base, **dict(zip(grid, combo))}
        out = report(corpus, run_corpus(args.cls, params, list(corpus), args.workers))
        cells = "  ".join(
            f"{name[:9]:>9} {p['all'].score:6.2f} A {p['A'].score:6.2f} B {p['B'].score:6.2f}"
            for name, p in out.items()
        )
        print(f"{json.dumps(dict(zip(grid, combo))):50s} {cells}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
