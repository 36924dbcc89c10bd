"""A machine that stops every day: the alerts of the shipped default config, day after day.

Every factory machine stops: a shift ends, a break, a weekend. Nobody configures an operating
mode for each stop (`[[modes.windows]]` or a control message would do it), so what a user gets
from an unconfigured stop is what this measures. One machine, four sensors, through the
service's own `Pipeline`:

- running: a 240-reading duty cycle (current, vibration and speed follow the load, temperature
  follows it through a thermal lag);
- stopped, for `--off` readings a day: current, vibration and speed at their floor, temperature
  cooling towards ambient. `floor`: the stopped sensors read exactly 0 (a clamp meter below its
  threshold, a speed of 0 rpm); `noisy`: current and vibration read a little noise, speed 0.

Printed per variant and day: the alerts that fired (reading of the day, kind, the first
sensors named), for the same machine never stopped (the baseline, same run), and for the noisy
stops declared as the shipped `idle` mode (learning paused), without and with `modes.settle`
(three time constants of the temperature, which lags the load). A stop seen many
times before is the machine's routine; an alert on it every day is a false alert.

    .venv/bin/python bench/daily_stops.py [--on 1200] [--off 400] [--days 12]
"""

from __future__ import annotations

import argparse
import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from anomstream.stream.config import load_config
from anomstream.stream.metrics import Metrics
from anomstream.stream.pipeline import Pipeline

from _common import consumed

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
AMBIENT = 22.0
TAU = 20  # the running temperature's time constant, in readings


def _duty(i: int, period: int = 240) -> float:
    """A trapezoid load in [0, 1]: ramp up, hold, ramp down, idle."""
    position = (i % period) / period
    return min(max(min(position / 0.1, (0.6 - position) / 0.1), 0.0), 1.0)


def readings(on: int, off: int, days: int, stopped: str, seed: int = 3) -> list[dict[str, float]]:
    """The machine's sensors, reading by reading; `stopped` is "floor", "noisy" or "never"."""
    rng = random.Random(seed)
    temp = 40.0
    out = []
    for i in range(days * (on + off)):
        position = i % (on + off)
        if stopped == "never" or position < on:
            load, jitter = _duty(position), rng.gauss(0.0, 0.03)
            temp += (40.0 + 20.0 * load - temp) / TAU  # thermal lag
            out.append({
                "current_a": round(10.0 + 20.0 * (load + jitter) + rng.gauss(0.0, 0.3), 3),
                "vib_rms": round(0.2 + 0.5 * (load + jitter) + rng.gauss(0.0, 0.02), 4),
                "speed_rpm": round(1500.0 - 40.0 * (load + jitter) + rng.gauss(0.0, 2.0), 1),
                "temp_c": round(temp + rng.gauss(0.0, 0.2), 2),
            })
            continue
        temp += 0.02 * (AMBIENT - temp)
        noisy = stopped == "noisy"
        out.append({
            "current_a": round(abs(rng.gauss(0.0, 0.05)), 3) if noisy else 0.0,
            "vib_rms": round(abs(rng.gauss(0.0, 0.003)), 4) if noisy else 0.0,
            "speed_rpm": 0.0,
            "temp_c": round(temp + rng.gauss(0.0, 0.2), 2),
        })
    return out


def alerts(
    values: list[dict[str, float]], windows: Sequence[dict[str, Any]] = (), settle: int = 0,
    rules: Sequence[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """The firing and resolved alert documents of the shipped config on `values`, with the
    operating-mode `windows` declared in config (`[[modes.windows]]`), `modes.settle` and
    the mode `rules` (`[[modes.rules]]`)."""
    overrides: dict[str, Any] = {"state.enabled": False, "modes.settle": settle}
    if windows:
        overrides["modes.windows"] = list(windows)
    if rules:
        overrides["modes.rules"] = list(rules)
    config = load_config(environ={}, overrides=overrides)
    pipeline = Pipeline(config, metrics=Metrics(CollectorRegistry()), clock=lambda: START)
    docs: list[dict[str, Any]] = []
    batch = 1000
    for first in range(0, len(values), batch):
        records = [
            consumed("m1", {"machine_id": "m1", "ts": START + i, "sensors": x}, START + i, offset=i)
            for i, x in enumerate(values[first : first + batch], first)
        ]
        docs += [orjson.loads(m.value) for m in pipeline.process(records).alerts]
    return docs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--on", type=int, default=1200, help="readings running per day")
    parser.add_argument("--off", type=int, default=400, help="readings stopped per day")
    parser.add_argument("--days", type=int, default=12)
    args = parser.parse_args()
    day = args.on + args.off
    # The remedy today: each stop declared as the shipped `idle` mode (learning paused).
    idle = [{"machine": "m1", "mode": "idle", "start": START + d * day + args.on, "until": START + (d + 1) * day}
            for d in range(args.days)]
    # ... and given time to warm up: three time constants of its temperature (TAU).
    # One rule instead of a window per stop: the machine is idle while its spindle stands.
    stands = [{"sensor": "speed_rpm", "below": 50.0, "mode": "idle"}]
    variants = [("never", (), 0, ()), ("floor", (), 0, ()), ("noisy", (), 0, ()),
                ("noisy", idle, 0, ()), ("noisy", idle, 3 * TAU, ()),
                ("floor", (), 3 * TAU, stands), ("noisy", (), 3 * TAU, stands),
                ("never", (), 3 * TAU, stands)]
    for stopped, windows, settle, rules in variants:
        fired: dict[int, list[str]] = defaultdict(list)
        for doc in alerts(readings(args.on, args.off, args.days, stopped), windows, settle, rules):
            if doc["status"] == "firing":
                i = doc["source"]["offset"]
                names = ",".join(s["name"] for s in doc["sensors"][:3])
                fired[i // day].append(f"{i % day} {doc['kind']} [{names}]")
        later = sum(len(fired[d]) for d in range(3, args.days))
        label = "never stopped (baseline)" if stopped == "never" else f"stopped at reading {args.on}, {stopped}"
        if windows:
            label += ", each stop declared idle ([[modes.windows]])"
        if rules:
            label += ", idle while speed_rpm < 50 ([[modes.rules]])"
        if settle:
            label += f", modes.settle = {settle}"
        print(f"{label}: {sum(map(len, fired.values()))} alerts in {args.days} days, "
              f"{later} from day 3 on ({later / max(args.days - 3, 1):.2f} a day)")
        for d in range(args.days):
            print(f"  day {d:2d}: {'; '.join(fired[d]) or '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
