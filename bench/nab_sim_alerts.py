"""The service's alerts on the simulator: false alerts, time inside alerts, resolution after faults.

Runs `anomstream.stream.pipeline.Pipeline` (the service's own path: decoding, per-sensor models,
alert policy, shipped config) over simulated machines, once with no faults and once with the
simulator's random faults, and reports

- false alerts per 10,000 clean readings, and the share of clean readings inside an alert;
- per fault kind: faults alerted on the right machine, and readings from the fault's end to its
  alert's `resolved` (the resolution bound; "open" if still firing at the end).

    python bench/nab_sim_alerts.py [--machines 10] [--readings 100000]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from anomstream.stream.config import load_config
from anomstream.stream.metrics import Metrics
from anomstream.stream.pipeline import Pipeline
from anomstream.stream.simulator import Simulator

from _common import sim_record


def run(sim: Simulator, readings: int) -> tuple[list[dict], int]:
    """Alert documents of `readings` simulated readings through the pipeline; readings scored."""
    config = load_config(environ={}, overrides={"state.enabled": False})
    pipeline = Pipeline(config, metrics=Metrics(CollectorRegistry()), clock=time.time)
    alerts: list[dict] = []
    batch: list[Any] = []
    for i, r in enumerate(sim.readings(readings)):
        batch.append(sim_record(r, topic="telemetry", offset=i))
        if len(batch) == 1000:
            alerts += [orjson.loads(m.value) for m in pipeline.process(batch).alerts]
            batch = []
    alerts += [orjson.loads(m.value) for m in pipeline.process(batch).alerts]
    return alerts, readings - sim.machines * config.detector.warmup


def _ts(alert: dict) -> float:
    from datetime import datetime

    return datetime.fromisoformat(alert["event_time"]).timestamp()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--machines", type=int, default=10)
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    clean = Simulator(machines=args.machines, seed=args.seed, fault_rate=0.0)
    alerts, scored = run(clean, args.readings)
    firing = [a for a in alerts if a["status"] == "firing"]
    inside = 0.0
    last = clean.start_time + args.readings / args.machines * clean.interval  # the stream's end
    for a in firing:  # a machine's readings inside an alert: firing to resolved (or the end)
        end = next((_ts(b) for b in alerts if b["alert_id"] == a["alert_id"] and b["status"] == "resolved"), last)
        inside += (end - _ts(a)) / clean.interval
    print(f"clean: {len(firing)} false alerts in {scored:,} scored readings "
          f"({1e4 * len(firing) / scored:.2f} per 10,000); {100 * inside / scored:.3f} % inside an alert")
    faulty = Simulator(machines=args.machines, seed=args.seed)
    alerts, scored = run(faulty, args.readings)
    by_kind: dict[str, list[str]] = {}
    matched: set[str] = set()
    for f in faulty.faults:
        hits = [a for a in alerts if a["status"] == "firing" and a["machine_id"] == f.machine
                and f.start_ts - 1e-3 <= _ts(a) <= f.end_ts + 50 * faulty.interval]
        if not hits:
            by_kind.setdefault(f.kind, []).append("miss")
            continue
        matched.update(a["alert_id"] for a in hits)
        resolved = [a for a in alerts if a["status"] == "resolved" and a["alert_id"] == hits[0]["alert_id"]]
        delay = "open" if not resolved else str(round((_ts(resolved[0]) - f.end_ts) / faulty.interval))
        by_kind.setdefault(f.kind, []).append(delay)
    false = [a for a in alerts if a["status"] == "firing" and a["alert_id"] not in matched]
    print(f"faults: {len(faulty.faults)} injected, {len(false)} alerts on no fault")
    for kind, delays in sorted(by_kind.items()):
        numbers = sorted(int(d) for d in delays if d not in ("miss", "open"))
        print(f"  {kind:>12}: {len(delays)} faults, {delays.count('miss')} missed, "
              f"{delays.count('open')} still open; readings from fault end to resolved: "
              f"max {numbers[-1] if numbers else '-'}, median {numbers[len(numbers) // 2] if numbers else '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
