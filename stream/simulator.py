"""Simulated factory telemetry with labelled, injected faults. Pure: no broker, no clock.

Each machine runs a periodic duty cycle (idle, ramp up, loaded, ramp down). Its five sensors
follow the load the way real ones do: current and vibration at once, temperature through a
thermal lag, speed dips slightly under load, pressure follows with its own noise. A slow ambient
wave moves temperature (and a little pressure) on top. Faults are added on top of that clean
signal and labelled, so detectors can be scored against the labels.

Two kinds of fault exist. The marginal ones (`FAULT_KINDS`: spike, level shift, drift, stuck,
noise burst) take a sensor out of what it normally reads. The relation faults
(`RELATION_FAULT_KINDS`) keep every sensor inside its normal range and only break how one sensor
follows the load: `decouple` makes it follow the duty cycle shifted in phase (a current that no
longer follows the load the others show), `relation_drift` makes its gain to the load fade
slowly. Only a model of the relations between sensors can see those.

Randomness is split into independent, seeded streams (machine profiles, signal noise, fault
schedule per machine, fault noise), so the clean signal of a seed is the same whether faults are
injected or not: a faulty stream differs from the clean one only inside its fault windows (but
for a relation fault on temperature, which settles back through the thermal lag after its end).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import orjson

__all__ = [
    "DEFAULT_FAULT_RATE",
    "FAULT_KINDS",
    "RELATION_FAULT_KINDS",
    "SENSORS",
    "Fault",
    "FaultSpec",
    "Reading",
    "Simulator",
]

SENSORS = ("temp_c", "vib_rms", "current_a", "pressure_bar", "speed_rpm")
# Random faults draw from these unless `Simulator(fault_kinds=...)` says otherwise.
FAULT_KINDS = ("spike", "level_shift", "drift", "stuck", "noise_burst")
RELATION_FAULT_KINDS = ("decouple", "relation_drift")
_ALL_KINDS = FAULT_KINDS + RELATION_FAULT_KINDS
DEFAULT_FAULT_RATE = 2.0

_TEMP, _PRESSURE = SENSORS.index("temp_c"), SENSORS.index("pressure_bar")
_ISO_SECOND = "%Y-%m-%dT%H:%M:%S"  # + ".mmmZ"
# Decimals each sensor reports with: what a real gateway sends, and it keeps records small.
_DECIMALS = (2, 4, 3, 3, 1)
# Physical floor per sensor: RMS, current, pressure and speed cannot go negative.
_FLOOR = np.array([-np.inf, 0.0, 0.0, 0.0, 0.0])

# Per machine kind and sensor: (idle value, change at full load, noise sd). Speed has a negative
# gain: motors slip under load.
_KIND_PROFILES: dict[str, tuple[tuple[float, float, float], ...]] = {
    "press": ((45.0, 20.0, 0.25), (0.25, 0.50, 0.020), (6.0, 18.0, 0.30), (4.0, 2.5, 0.06),
              (1480.0, -35.0, 2.0)),
    "lathe": ((38.0, 14.0, 0.20), (0.15, 0.30, 0.015), (4.0, 10.0, 0.20), (5.5, 0.6, 0.05),
              (2950.0, -60.0, 4.0)),
    "pump": ((35.0, 12.0, 0.20), (0.20, 0.25, 0.020), (8.0, 14.0, 0.25), (2.5, 3.5, 0.08),
             (1450.0, -25.0, 2.0)),
    "mill": ((42.0, 18.0, 0.25), (0.30, 0.60, 0.030), (5.0, 15.0, 0.30), (6.0, 0.8, 0.05),
             (1800.0, -50.0, 3.0)),
    "compressor": ((50.0, 25.0, 0.30), (0.35, 0.40, 0.025), (10.0, 20.0, 0.35),
                   (6.5, 1.5, 0.07), (2900.0, -40.0, 3.0)),
}  # fmt: skip
_KINDS = tuple(_KIND_PROFILES)

# Random fault shapes: duration range in readings, |magnitude| range in units of the sensor's
# normal spread (noise and duty-cycle swing together, see `Simulator.sensor_scales`). Sized so a
# fault is clearly outside what the machine does normally, yet physically plausible.
_FAULT_SHAPES: dict[str, tuple[tuple[int, int], tuple[float, float]]] = {
    "spike": ((1, 3), (4.0, 7.0)),
    "level_shift": ((40, 120), (3.0, 4.5)),
    "drift": ((80, 200), (3.5, 5.5)),
    "stuck": ((40, 120), (0.0, 0.0)),
    "noise_burst": ((30, 90), (1.5, 3.0)),
    # Relation faults: the phase shift as a share of the duty period (half: loaded while the
    # machine idles), and the share of the load gain lost by the end of a drift. Several duty
    # cycles long (60-200 readings each), so the broken relation shows over whole cycles.
    "decouple": ((150, 400), (0.35, 0.65)),
    "relation_drift": ((300, 600), (0.6, 0.9)),
}
# Magnitude of an explicit `FaultSpec` that gives none.
_TYPICAL_MAGNITUDE = {"spike": 5.0, "level_shift": 3.5, "drift": 4.5, "stuck": 0.0,
                      "noise_burst": 2.0, "decouple": 0.5, "relation_drift": 0.8}  # fmt: skip
# Kinds whose magnitude has no sign (random faults draw no direction for them).
_UNSIGNED = ("stuck", "noise_burst", *RELATION_FAULT_KINDS)
# Quiet readings between two random faults on one machine, so an alert can resolve in between.
_SETTLE = 100
# Steps generated per numpy block: large enough to amortise numpy calls, small enough that the
# first reading comes out at once.
_BLOCK = 256


@dataclass(frozen=True)
class Fault:
    """One injected fault, the label a detector is scored against.

    `start_index`/`end_index` count the machine's own readings (end exclusive); `start_ts` and
    `end_ts` are the event times of those two readings, in epoch seconds. `magnitude` is in units
    of the sensor's normal spread: the offset of `spike` and `level_shift`, the offset reached at
    the end of a `drift`, the sd of the added noise of a `noise_burst`; 0 for `stuck`. For the
    relation faults it is a share: of the duty period the sensor's load is shifted by
    (`decouple`, in (0, 1)), of the sensor's load gain lost by the fault's end
    (`relation_drift`, in (0, 1]). `sensor` is the sensor whose relation breaks.
    """

    machine: str
    sensor: str
    kind: str
    start_index: int
    end_index: int
    start_ts: float
    end_ts: float
    magnitude: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        return cls(**data)


@dataclass(frozen=True)
class FaultSpec:
    """A fault to inject on purpose. `machine` is a 0-based index or an id such as `press-01`;
    `magnitude` (spread units, see `Fault`) defaults to a typical value of the kind."""

    machine: int | str
    sensor: str
    kind: str
    start_index: int
    duration: int
    magnitude: float | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """One reading as sent: `record` is the telemetry value, with `ts` as ISO-8601 UTC."""

    machine_id: str
    index: int
    ts: float
    record: dict[str, Any]


class Simulator:
    """A fleet of simulated machines, read round-robin: one reading per machine per step.

    Parameters
    ----------
    machines
        Number of machines; ids cycle through kinds: `press-01`, `lathe-02`, `pump-03`, ...
    seed
        Seeds every random choice; the same seed gives the same readings and faults.
    interval
        Seconds of event time between two readings of one machine. Machines are staggered
        evenly inside the interval, so the interleaved stream has increasing timestamps.
    start_time
        Event time of the first reading, epoch seconds; default: now.
    fault_rate
        Expected random faults per machine per 1000 readings; 0 gives a clean stream. Faults on
        one machine do not overlap and keep 100 readings apart, so high rates saturate (about
        5 per 1000 at most).
    faults
        Faults to inject instead of random ones (an empty sequence also means a clean stream).
    warmup
        No random fault starts before this reading index, so detectors can learn first.
    fault_kinds
        Kinds random faults are drawn from (default `FAULT_KINDS`; add
        `RELATION_FAULT_KINDS` for faults that only break a relation between sensors).

    Examples
    --------
    >>> sim = Simulator(machines=2, seed=1, start_time=0.0, faults=[
    ...     FaultSpec(machine="lathe-02", sensor="temp_c", kind="level_shift",
    ...               start_index=1, duration=5)])
    >>> [(r.machine_id, r.index, r.record["ts"]) for r in sim.readings(3)]
    [('press-01', 0, '1970-01-01T00:00:00.000Z'), ('lathe-02', 0, '1970-01-01T00:00:00.500Z'), \
('press-01', 1, '1970-01-01T00:00:01.000Z')]
    >>> sim.faults
    ()
    >>> next(sim.readings(1)).index, [f.kind for f in sim.faults]
    (1, ['level_shift'])
    """

    def __init__(
        self,
        *,
        machines: int = 5,
        seed: int = 0,
        interval: float = 1.0,
        start_time: float | None = None,
        fault_rate: float = DEFAULT_FAULT_RATE,
        faults: Sequence[FaultSpec] | None = None,
        warmup: int = 300,
        fault_kinds: Sequence[str] = FAULT_KINDS,
    ) -> None:
        if machines < 1:
            raise ValueError(f"machines must be >= 1, got {machines}")
        if not interval > 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval}")
        if not fault_rate >= 0:
            raise ValueError(f"fault_rate must be >= 0, got {fault_rate}")
        if warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {warmup}")
        unknown = [k for k in fault_kinds if k not in _ALL_KINDS]
        if unknown or not fault_kinds:
            raise ValueError(f"fault_kinds must be some of {_ALL_KINDS}, got {tuple(fault_kinds)}")
        self.machines = machines
        self.seed = seed
        self.interval = float(interval)
        self.start_time = time.time() if start_time is None else float(start_time)
        self.fault_rate = float(fault_rate)
        self.warmup = warmup
        self.fault_kinds = tuple(fault_kinds)
        self.machine_ids = tuple(f"{_KINDS[m % len(_KINDS)]}-{m + 1:02d}" for m in range(machines))

        profile_ss, signal_ss, fault_ss, schedule_ss = np.random.SeedSequence(seed).spawn(4)
        self._init_profiles(np.random.default_rng(profile_ss))
        self._signal_rng = np.random.default_rng(signal_ss)
        self._fault_rng = np.random.default_rng(fault_ss)
        self._schedule_rngs = [np.random.default_rng(s) for s in schedule_ss.spawn(machines)]

        self._start_ms = round(self.start_time * 1000)
        self._stagger = self.interval / machines
        self._scheduled: list[Fault] = []
        # Faults not yet over, per machine, in start order; finished ones are dropped.
        self._live: list[list[Fault]] = [[] for _ in range(machines)]
        self._next_random_start: list[float] = [math.inf] * machines
        if faults is not None:
            for spec in faults:
                self._add(self._fault_from_spec(spec))
        elif self.fault_rate > 0:
            for m in range(machines):
                self._next_random_start[m] = self.warmup + self._random_gap(m)
        self._emitted = 0
        self._stream = self._generate()

    # ---------------------------------------------------------------- public

    @property
    def sensor_scales(self) -> dict[str, dict[str, float]]:
        """Normal spread of each machine's sensors (noise and duty-cycle swing): the unit of
        fault magnitudes."""
        return {
            machine: {s: round(float(v), 6) for s, v in zip(SENSORS, row, strict=True)}
            for machine, row in zip(self.machine_ids, self._spread, strict=True)
        }

    @property
    def faults(self) -> tuple[Fault, ...]:
        """Faults that have started in the readings handed out so far, in event-time order.

        A fault still running when the stream stops keeps its planned end.
        """
        emitted = self._emitted_per_machine()
        index = {machine: m for m, machine in enumerate(self.machine_ids)}
        started = [f for f in self._scheduled if f.start_index < emitted[index[f.machine]]]
        return tuple(sorted(started, key=lambda f: (f.start_ts, f.machine)))

    @property
    def readings_emitted(self) -> int:
        return self._emitted

    def readings(self, count: int | None = None) -> Iterator[Reading]:
        """The next `count` readings (all machines together; None = endless).

        Successive calls continue the same stream.
        """
        if count is not None and count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        return islice(self._stream, count)

    def labels(self) -> dict[str, Any]:
        return {
            "faults": [f.to_dict() for f in self.faults],
            "machines": list(self.machine_ids),
            "seed": self.seed,
            "interval": self.interval,
            "start_time": self.start_time,
            "readings": self._emitted,
            "sensors": list(SENSORS),
            "magnitude_unit": "sensor normal spread, see sensor_scales",
            "sensor_scales": self.sensor_scales,
        }

    def write_labels(self, path: str | os.PathLike[str]) -> None:
        """Write `labels()` as JSON; atomically, since it is also called while shutting down."""
        target = Path(path)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(orjson.dumps(self.labels(), option=orjson.OPT_INDENT_2))
        os.replace(partial, target)

    # ---------------------------------------------------------------- set-up

    def _init_profiles(self, rng: np.random.Generator) -> None:
        m = self.machines
        table = np.array([_KIND_PROFILES[mid.split("-")[0]] for mid in self.machine_ids])
        # Machines of one kind are alike, not identical.
        self._idle = table[:, :, 0] * rng.uniform(0.95, 1.05, (m, len(SENSORS)))
        self._gain = table[:, :, 1] * rng.uniform(0.85, 1.15, (m, len(SENSORS)))
        self._noise_sd = table[:, :, 2] * rng.uniform(0.9, 1.1, (m, len(SENSORS)))
        self._period = rng.integers(60, 201, m).astype(float)
        self._phase = rng.integers(0, 200, m).astype(float)
        self._ramp = rng.uniform(0.08, 0.15, m)  # fraction of the period, each way
        self._duty = rng.uniform(0.3, 0.55, m)  # fraction of the period at full load
        # Temperature lag: first-order filter, time constant 12-33 readings.
        self._alpha = rng.uniform(0.03, 0.08, m)
        self._ambient_period = rng.uniform(2000.0, 6000.0, m)
        self._ambient_phase = rng.uniform(0.0, 2 * math.pi, m)
        self._temp_state = self._targets(np.arange(1), 0.0)[0, :, _TEMP]
        self._spread = self._normal_spread()
        self._last = np.zeros((m, len(SENSORS)))

    def _normal_spread(self) -> np.ndarray:
        """Sd of each sensor's clean signal over a few duty cycles, with its noise."""
        settle, span = 200, 600
        targets = self._targets(np.arange(settle + span), 0.0)
        targets[:, :, _TEMP], _ = _thermal_lag(targets[:, :, _TEMP], self._alpha, self._temp_state)
        cycle_sd = targets[settle:].std(axis=0)
        return np.hypot(cycle_sd, self._noise_sd)

    def _fault_from_spec(self, spec: FaultSpec) -> Fault:
        if isinstance(spec.machine, int):
            if not 0 <= spec.machine < self.machines:
                raise ValueError(
                    f"fault machine index {spec.machine} is not in 0..{self.machines - 1}"
                )
            m = spec.machine
        elif spec.machine in self.machine_ids:
            m = self.machine_ids.index(spec.machine)
        else:
            raise ValueError(f"fault machine {spec.machine!r} is not one of {self.machine_ids}")
        if spec.sensor not in SENSORS:
            raise ValueError(f"fault sensor {spec.sensor!r} is not one of {SENSORS}")
        if spec.kind not in _ALL_KINDS:
            raise ValueError(f"fault kind {spec.kind!r} is not one of {_ALL_KINDS}")
        if spec.start_index < 0 or spec.duration < 1:
            raise ValueError(f"fault needs start_index >= 0 and duration >= 1, got {spec}")
        magnitude = _TYPICAL_MAGNITUDE[spec.kind] if spec.magnitude is None else spec.magnitude
        if spec.kind == "decouple" and not 0 < magnitude < 1:
            raise ValueError(f"decouple magnitude is a share of the period in (0, 1), got {magnitude}")
        if spec.kind == "relation_drift" and not 0 < magnitude <= 1:
            raise ValueError(f"relation_drift magnitude is a share of the gain in (0, 1], got {magnitude}")
        return self._make_fault(
            m, spec.sensor, spec.kind, spec.start_index, spec.duration, magnitude
        )

    def _make_fault(
        self, m: int, sensor: str, kind: str, start: int, duration: int, magnitude: float
    ) -> Fault:
        return Fault(
            machine=self.machine_ids[m],
            sensor=sensor,
            kind=kind,
            start_index=start,
            end_index=start + duration,
            start_ts=int(self._ts_ms(start, m)) / 1000,
            end_ts=int(self._ts_ms(start + duration, m)) / 1000,
            magnitude=float(magnitude),
        )

    def _add(self, fault: Fault) -> None:
        self._scheduled.append(fault)
        live = self._live[self.machine_ids.index(fault.machine)]
        live.append(fault)
        live.sort(key=lambda f: f.start_index)

    def _random_gap(self, m: int) -> int:
        return int(self._schedule_rngs[m].exponential(1000.0 / self.fault_rate))

    def _schedule_random(self, m: int, horizon: int) -> None:
        """Draw the random faults of machine `m` that start before reading `horizon`."""
        rng = self._schedule_rngs[m]
        while self._next_random_start[m] < horizon:
            start = int(self._next_random_start[m])
            kind = self.fault_kinds[rng.integers(len(self.fault_kinds))]
            (low, high), (small, large) = _FAULT_SHAPES[kind]
            duration = int(rng.integers(low, high + 1))
            # Stuck, noise bursts and relation faults have no direction; offsets go either way.
            sign = 1.0 if kind in _UNSIGNED else float(rng.choice((-1.0, 1.0)))
            magnitude = round(sign * rng.uniform(small, large), 3)
            sensor = SENSORS[rng.integers(len(SENSORS))]
            self._add(self._make_fault(m, sensor, kind, start, duration, magnitude))
            # Gaps count from the fault's start so the rate holds for any fault length; faults
            # on one machine never overlap and keep `_SETTLE` readings apart.
            self._next_random_start[m] = max(
                start + self._random_gap(m), start + duration + _SETTLE
            )

    # ---------------------------------------------------------------- signal

    def _ts_ms(self, index: Any, machine: Any) -> Any:
        """Event time in epoch ms of reading `index` of `machine` (scalars or arrays)."""
        offset = np.rint((index * self.interval + machine * self._stagger) * 1000)
        return self._start_ms + offset.astype(np.int64)

    def _targets(self, idx: np.ndarray, load_jitter: Any) -> np.ndarray:
        """Noise-free sensor values (B, machines, sensors) at reading indices `idx`, before the
        thermal lag."""
        load = self._duty_load(idx) + load_jitter
        ambient = np.sin(2 * math.pi * idx[:, None] / self._ambient_period + self._ambient_phase)
        targets = self._idle + self._gain * load[:, :, None]
        targets[:, :, _TEMP] += 1.2 * ambient
        targets[:, :, _PRESSURE] += 0.03 * ambient
        return targets

    def _duty_load(self, idx: np.ndarray) -> np.ndarray:
        """The duty cycle's load in [0, 1], (B, machines), at reading indices `idx` (B,)."""
        position = ((idx[:, None] + self._phase) % self._period) / self._period
        ramp = self._ramp
        # Trapezoid: rise over `ramp`, hold for `duty`, fall over `ramp`, idle for the rest.
        return np.clip(np.minimum(position / ramp, (2 * ramp + self._duty - position) / ramp), 0, 1)

    def _break_relation(self, targets: np.ndarray, start: int, m: int, fault: Fault) -> None:
        """Move one sensor's noise-free target off the load the machine's other sensors follow,
        within the range the load cycle spans: the sensor reads what it could read normally."""
        lo, hi = max(fault.start_index, start), min(fault.end_index, start + len(targets))
        s = SENSORS.index(fault.sensor)
        idx = np.arange(lo, hi)
        load = self._duty_load(idx)[:, m]
        if fault.kind == "decouple":
            shift = round(fault.magnitude * self._period[m])
            new_load = self._duty_load(idx + shift)[:, m]
        else:  # relation_drift: the gain fades linearly to (1 - magnitude) of itself
            done = (idx - fault.start_index + 1) / (fault.end_index - fault.start_index)
            new_load = load * (1.0 - fault.magnitude * done)
        targets[lo - start : hi - start, m, s] += self._gain[m, s] * (new_load - load)

    def _block(self, start: int, steps: int) -> np.ndarray:
        """Readings `start`..`start+steps-1` of every machine, faults applied and rounded."""
        m = self.machines
        idx = np.arange(start, start + steps)
        # One load jitter per machine and step, shared by all sensors: it is what makes them
        # correlate even while the duty cycle holds still.
        values = self._targets(idx, self._signal_rng.normal(0.0, 0.03, (steps, m)))
        in_block: list[list[Fault]] = []
        for machine in range(m):
            self._schedule_random(machine, start + steps)
            live = self._live[machine]
            live[:] = [f for f in live if f.end_index > start]
            in_block.append([f for f in live if f.start_index < start + steps])
            for fault in in_block[machine]:
                if fault.kind in RELATION_FAULT_KINDS:
                    # On the target, before the thermal lag: a temperature that follows another
                    # load still lags behind it (and settles back over a few readings after).
                    self._break_relation(values, start, machine, fault)
        values[:, :, _TEMP], self._temp_state = _thermal_lag(
            values[:, :, _TEMP], self._alpha, self._temp_state
        )
        values += self._noise_sd * self._signal_rng.standard_normal((steps, m, len(SENSORS)))
        stuck: list[tuple[int, Fault]] = []
        for machine in range(m):
            for fault in in_block[machine]:
                if fault.kind in RELATION_FAULT_KINDS:
                    continue  # applied to the targets above
                if fault.kind == "stuck":
                    stuck.append((machine, fault))  # frozen after rounding, as sent
                else:
                    self._apply(values, start, machine, fault)
        np.maximum(values, _FLOOR, out=values)
        for s, decimals in enumerate(_DECIMALS):
            values[:, :, s] = np.round(values[:, :, s], decimals)
        for machine, fault in stuck:
            self._freeze(values, start, machine, fault)
        self._last = values[-1].copy()
        return values

    def _apply(self, values: np.ndarray, start: int, m: int, fault: Fault) -> None:
        lo, hi = max(fault.start_index, start), min(fault.end_index, start + len(values))
        s = SENSORS.index(fault.sensor)
        size = fault.magnitude * self._spread[m, s]
        rows = values[lo - start : hi - start, m, s]
        if fault.kind in ("spike", "level_shift"):
            rows += size
        elif fault.kind == "drift":
            done = np.arange(lo, hi) - fault.start_index + 1
            rows += size * done / (fault.end_index - fault.start_index)
        elif fault.kind == "noise_burst":
            rows += abs(size) * self._fault_rng.standard_normal(hi - lo)

    def _freeze(self, values: np.ndarray, start: int, m: int, fault: Fault) -> None:
        lo, hi = max(fault.start_index, start), min(fault.end_index, start + len(values))
        s = SENSORS.index(fault.sensor)
        if lo == 0:
            frozen = values[0, m, s]  # no earlier reading: stuck from the first one
        elif lo == start:
            frozen = self._last[m, s]  # the previous block's last reading, already frozen if stuck
        else:
            frozen = values[lo - start - 1, m, s]
        values[lo - start : hi - start, m, s] = frozen

    def _generate(self) -> Iterator[Reading]:
        ids = self.machine_ids
        machines = np.arange(self.machines)
        step = 0
        cached_second, prefix = -1, ""
        while True:
            block = self._block(step, _BLOCK).tolist()
            stamps = self._ts_ms(np.arange(step, step + _BLOCK)[:, None], machines).tolist()
            for b in range(_BLOCK):
                index = step + b
                for m, machine_id in enumerate(ids):
                    ts_ms = stamps[b][m]
                    second, millis = divmod(ts_ms, 1000)
                    # Readings come in time order, so one cached second saves most strftime calls.
                    if second != cached_second:
                        cached_second = second
                        prefix = time.strftime(_ISO_SECOND, time.gmtime(second))
                    record = {
                        "machine_id": machine_id,
                        "ts": f"{prefix}.{millis:03d}Z",
                        "sensors": dict(zip(SENSORS, block[b][m], strict=True)),
                    }
                    self._emitted += 1
                    yield Reading(machine_id, index, ts_ms / 1000, record)
            step += _BLOCK

    def _emitted_per_machine(self) -> list[int]:
        steps, extra = divmod(self._emitted, self.machines)
        return [steps + (1 if m < extra else 0) for m in range(self.machines)]


def _thermal_lag(
    targets: np.ndarray, alpha: np.ndarray, state: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """First-order filter along axis 0 (temperature approaching its target), from `state`."""
    out = np.empty_like(targets)
    for row in range(len(targets)):
        state = state + alpha * (targets[row] - state)
        out[row] = state
    return out, state
