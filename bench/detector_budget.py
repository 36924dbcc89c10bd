"""Cost of the default detectors in replay: sensor values per second per core, and live memory.

Issue 10 budgets the default detectors (one model per sensor plus the machine-wide model) at
20,000 sensor values/s per core in replay, and at most 8 KB of RSS growth per sensor. Both are
measured here on the service's own path, `Pipeline.process` (decode, every model, the alert
policy, metrics), without Kafka, on simulated telemetry (5 sensors per machine, 2 % faults):

- throughput: `--machines` machines past their warm-up (young models), then `--readings`
  readings timed; again once each machine has `--settled` readings (settled models); for the
  shipped config with and without its machine-wide model (the baseline, same run, fed the
  same batches in turn: this machine's speed varies by 40 % between runs under CPU steal);
- memory: RSS before and after `--memory-machines` machines x 5 sensors have each learned
  `--memory-readings` readings (past the 150-reading warm-up), divided by their sensors.

Run: `.venv/bin/python bench/detector_budget.py` (about a minute and a half on 2 cores).
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from anomstream.stream.config import load_config
from anomstream.stream.metrics import Metrics
from anomstream.stream.pipeline import Pipeline
from anomstream.stream.simulator import Simulator

from _common import sim_record


def _records(machines: int, count: int, seed: int, first: int = 0) -> list[Any]:
    """Simulated records at offsets `first`, `first + 1`, ...: offsets a pipeline has already
    included would be skipped as replays, so a timed stream continues the warm-up's offsets."""
    sim = Simulator(machines=machines, seed=seed, fault_rate=2.0, start_time=1.7e9)
    return [sim_record(r, offset=first + i) for i, r in enumerate(sim.readings(count))]


def _pipeline(overrides: dict[str, Any]) -> Pipeline:
    config = load_config(environ={}, overrides={"state.enabled": False, **overrides})
    return Pipeline(config, metrics=Metrics(CollectorRegistry()), clock=lambda: 1.7e9)


def _feed(pipeline: Pipeline, records: list[Any], batch: int = 2000) -> None:
    for i in range(0, len(records), batch):
        pipeline.process(records[i : i + batch])


def _rss_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def throughput(
    machines: int, readings: int, settled: int, variants: dict[str, dict[str, Any]]
) -> dict[str, tuple[float, float]]:
    """Sensor values per CPU second of each variant, young (every model past its 200-reading
    warm-up) and settled (past `settled` readings a machine: the machine-wide model's counts
    past its memory, its steady path). The variants are fed the same batches in turn, so a
    slower spell of a shared machine (CPU steal) falls on all of them alike."""
    young_warm = machines * 200
    later_warm = max(machines * settled - young_warm - readings, 0)
    stream = _records(machines, young_warm + readings + later_warm + readings, seed=1)
    phases = [
        (stream[:young_warm], False),
        (stream[young_warm : young_warm + readings], True),
        (stream[young_warm + readings : young_warm + readings + later_warm], False),
        (stream[young_warm + readings + later_warm :], True),
    ]
    pipelines = {name: _pipeline(o) for name, o in variants.items()}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    batch = 2000
    for records, timed in phases:
        spent = dict.fromkeys(variants, 0.0)
        for i in range(0, len(records), batch):
            for name, pipeline in pipelines.items():
                started = time.process_time()  # CPU seconds of this process: "per core"
                pipeline.process(records[i : i + batch])
                spent[name] += time.process_time() - started
        if timed:
            for name in variants:
                seconds[name].append(spent[name])
    young_values, later_values = (
        sum(len(orjson.loads(r.value)["sensors"]) for r in records)
        for records, timed in phases if timed
    )
    for pipeline in pipelines.values():
        assert pipeline.models.machines == machines  # every timed reading was scored
    return {
        name: (young_values / young, later_values / later)
        for name, (young, later) in seconds.items()
    }


def memory(machines: int, readings: int, overrides: dict[str, Any]) -> float:
    """RSS growth in bytes per sensor model after `readings` readings per machine."""
    records = _records(machines, machines * readings, seed=3)
    gc.collect()
    before = _rss_kb()
    pipeline = _pipeline(overrides)
    _feed(pipeline, records)
    del records
    gc.collect()
    grown = (_rss_kb() - before) * 1024
    return grown / (machines * 5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machines", type=int, default=20)
    parser.add_argument("--readings", type=int, default=20_000)
    parser.add_argument("--settled", type=int, default=2_200, help="readings a machine before the settled timing")
    parser.add_argument("--memory-machines", type=int, default=2_000)
    parser.add_argument("--memory-readings", type=int, default=200)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    shipped = load_config(environ={}, overrides={"state.enabled": False}).detector
    variants = {
        f"shipped ({shipped.name} + {shipped.machine_model or 'no machine model'})": {},
        f"baseline: {shipped.name} per sensor only": {"detector.machine_model": ""},
    }
    rates = throughput(args.machines, args.readings, args.settled, variants)
    base = rates[list(variants)[1]]
    print(f"{'variant':<50} {'young':>8} {'x base':>7} {'settled':>8} {'x base':>7}  (values/s/core)")
    for name, (young, later) in rates.items():
        print(f"{name:<50} {young:8,.0f} {young / base[0]:7.2f} {later:8,.0f} {later / base[1]:7.2f}")
    if not args.skip_memory:
        # One process per figure would be cleaner; two in a row: the second reuses freed pages.
        per_sensor = memory(args.memory_machines, args.memory_readings, {})
        print(
            f"RSS growth, shipped config: {per_sensor:,.0f} B per sensor "
            f"({args.memory_machines} machines x 5 sensors, {args.memory_readings} readings each)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
