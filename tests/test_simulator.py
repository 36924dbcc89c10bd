"""The telemetry simulator without a broker: structure of the data, faults and their labels."""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from anomstream.stream.errors import DeliveryError
from anomstream.stream.simulator import FAULT_KINDS, SENSORS, Fault, FaultSpec, Simulator
from anomstream.stream.simulator_kafka import produce_readings

START = 1795338000.0  # 2026-11-22T09:00:00Z
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _sim(**params: Any) -> Simulator:
    return Simulator(**{"machines": 3, "seed": 7, "start_time": START, **params})


def _series(sim: Simulator, steps: int) -> np.ndarray:
    """`steps` readings of every machine as an array (machine, index, sensor)."""
    table = np.empty((sim.machines, steps, len(SENSORS)))
    for r in sim.readings(steps * sim.machines):
        table[sim.machine_ids.index(r.machine_id), r.index] = list(r.record["sensors"].values())
    return table


def _with_fault(kind: str, sensor: str, *, start: int = 400, duration: int = 80,
                magnitude: float | None = None, steps: int = 700) -> tuple[np.ndarray, np.ndarray,
                                                                          Simulator]:  # fmt: skip
    """Readings of the same seed without and with one fault on machine 1."""
    clean = _series(_sim(faults=[]), steps)
    spec = FaultSpec(machine=1, sensor=sensor, kind=kind, start_index=start, duration=duration,
                     magnitude=magnitude)  # fmt: skip
    faulty_sim = _sim(faults=[spec])
    return clean, _series(faulty_sim, steps), faulty_sim


def test_same_seed_gives_same_stream_and_faults() -> None:
    first, second = _sim(fault_rate=5), _sim(fault_rate=5)
    assert list(first.readings(6000)) == list(second.readings(6000))
    assert first.faults and first.faults == second.faults
    other = _sim(seed=8, fault_rate=5)
    assert [r.record for r in other.readings(30)] != [r.record for r in _sim().readings(30)]


def test_successive_calls_continue_the_stream() -> None:
    whole = [r.record for r in _sim().readings(1000)]
    sim = _sim()
    parts = [r.record for r in sim.readings(7)] + [r.record for r in sim.readings(993)]
    assert parts == whole
    assert sim.readings_emitted == 1000


def test_records_have_the_telemetry_shape() -> None:
    sim = Simulator(seed=1, start_time=START)
    assert sim.machine_ids == ("press-01", "lathe-02", "pump-03", "mill-04", "compressor-05")
    readings = list(sim.readings(2000))
    assert [r.machine_id for r in readings[:10]] == list(sim.machine_ids) * 2
    assert [r.index for r in readings[:10]] == [0] * 5 + [1] * 5
    assert readings[0].record["ts"] == "2026-11-22T09:00:00.000Z"
    assert readings[1].record["ts"] == "2026-11-22T09:00:00.200Z"  # staggered in the interval
    for r in readings:
        record = orjson.loads(orjson.dumps(r.record))
        assert set(record) == {"machine_id", "ts", "sensors"}
        assert record["machine_id"] == r.machine_id
        assert ISO_MS.match(record["ts"])
        assert list(record["sensors"]) == list(SENSORS)
        assert all(isinstance(v, float) and math.isfinite(v) for v in record["sensors"].values())
    stamps = [r.ts for r in readings]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert readings[-1].ts == pytest.approx(START + readings[-1].index + 4 * 0.2)


def test_sensors_correlate_through_the_load_cycle() -> None:
    table = _series(_sim(faults=[]), 2000)
    temp, vib, current, speed = (SENSORS.index(s) for s in ("temp_c", "vib_rms", "current_a",
                                                             "speed_rpm"))  # fmt: skip
    for machine in table:
        assert np.corrcoef(machine[:, current], machine[:, vib])[0, 1] > 0.6
        assert np.corrcoef(machine[:, current], machine[:, speed])[0, 1] < -0.5
        assert np.corrcoef(machine[:, current], machine[:, temp])[0, 1] > 0.2
        # The duty cycle dominates the noise: a real swing, not white noise.
        assert np.ptp(machine[:, current]) > 5 * np.std(np.diff(machine[:, current]))


def test_clean_stream_has_no_faults() -> None:
    for sim in (_sim(fault_rate=0), _sim(faults=[])):
        list(sim.readings(6000))
        assert sim.faults == ()


def test_random_faults_are_labelled_after_warmup() -> None:
    sim = _sim(fault_rate=5, warmup=300)
    readings = list(sim.readings(3 * 4000))
    ts = {(r.machine_id, r.index): r.ts for r in readings}
    assert len(sim.faults) >= 10
    assert {f.kind for f in sim.faults} == set(FAULT_KINDS)
    for fault in sim.faults:
        assert fault.machine in sim.machine_ids and fault.sensor in SENSORS
        assert 300 <= fault.start_index < fault.end_index
        assert fault.start_ts == ts[fault.machine, fault.start_index]
        assert fault.end_ts == pytest.approx(fault.start_ts + fault.end_index - fault.start_index)


def test_faults_change_only_their_own_windows() -> None:
    clean = _series(_sim(fault_rate=0), 3000)
    sim = _sim(fault_rate=5)
    faulty = _series(sim, 3000)
    expected = np.zeros(clean.shape, dtype=bool)
    for f in sim.faults:
        expected[sim.machine_ids.index(f.machine), f.start_index : f.end_index,
                 SENSORS.index(f.sensor)] = True  # fmt: skip
    changed = clean != faulty
    assert not (changed & ~expected).any()  # back to normal once a fault ends
    assert changed.any()


def test_level_shift_moves_the_window_mean_by_several_spreads() -> None:
    clean, faulty, sim = _with_fault("level_shift", "temp_c", magnitude=3.5)
    s = SENSORS.index("temp_c")
    window = slice(400, 480)
    shift = faulty[1, window, s].mean() - clean[1, window, s].mean()
    spread = sim.sensor_scales["lathe-02"]["temp_c"]
    assert shift == pytest.approx(3.5 * spread, abs=0.01)
    noise_sd = np.std(np.diff(clean[1, :, s])) / math.sqrt(2)
    assert shift > 10 * noise_sd


@pytest.mark.parametrize("start", [400, 250])  # 250: the fault crosses a generation block
def test_stuck_sensor_repeats_its_last_value(start: int) -> None:
    clean, faulty, _ = _with_fault("stuck", "vib_rms", start=start, duration=40)
    s = SENSORS.index("vib_rms")
    stuck = faulty[1, start : start + 40, s]
    assert np.all(stuck == faulty[1, start - 1, s])
    assert np.array_equal(faulty[1, start + 40 :, s], clean[1, start + 40 :, s])
    assert len(np.unique(clean[1, start : start + 40, s])) > 20


def test_drift_ramps_to_its_magnitude() -> None:
    clean, faulty, sim = _with_fault("drift", "speed_rpm", duration=100, magnitude=-4.0)
    s = SENSORS.index("speed_rpm")
    offset = faulty[1, 400:500, s] - clean[1, 400:500, s]
    spread = sim.sensor_scales["lathe-02"]["speed_rpm"]
    assert np.all(np.diff(offset) < 0)
    assert offset[-1] == pytest.approx(-4.0 * spread, abs=0.1)


def test_spike_and_noise_burst_stand_out() -> None:
    s = SENSORS.index("pressure_bar")
    clean, faulty, sim = _with_fault("spike", "pressure_bar", duration=2, magnitude=6.0)
    normal_range = clean[1, :, s].max() - clean[1, :, s].min()
    assert faulty[1, 400, s] > clean[1, :, s].max() + normal_range
    clean, faulty, sim = _with_fault("noise_burst", "pressure_bar", duration=60)
    burst_sd = np.std(faulty[1, 400:460, s] - clean[1, 400:460, s])
    assert burst_sd == pytest.approx(2.0 * sim.sensor_scales["lathe-02"]["pressure_bar"], rel=0.3)


def test_fault_spec_names_machines_and_rejects_mistakes() -> None:
    sim = _sim(faults=[FaultSpec(machine="pump-03", sensor="temp_c", kind="stuck", start_index=0,
                                 duration=5)])  # fmt: skip
    list(sim.readings(3))
    assert [f.machine for f in sim.faults] == ["pump-03"]
    bad = [
        FaultSpec(machine=3, sensor="temp_c", kind="spike", start_index=0, duration=1),
        FaultSpec(machine="press-99", sensor="temp_c", kind="spike", start_index=0, duration=1),
        FaultSpec(machine=0, sensor="oil_c", kind="spike", start_index=0, duration=1),
        FaultSpec(machine=0, sensor="temp_c", kind="melt", start_index=0, duration=1),
        FaultSpec(machine=0, sensor="temp_c", kind="spike", start_index=0, duration=0),
    ]
    for spec in bad:
        with pytest.raises(ValueError):
            _sim(faults=[spec])


def test_labels_file_round_trips(tmp_path: Path) -> None:
    sim = _sim(fault_rate=5)
    list(sim.readings(3 * 2000))
    path = tmp_path / "labels.json"
    sim.write_labels(path)
    labels = orjson.loads(path.read_bytes())
    assert [Fault.from_dict(f) for f in labels["faults"]] == list(sim.faults)
    assert labels["machines"] == list(sim.machine_ids)
    assert (labels["seed"], labels["interval"], labels["readings"]) == (7, 1.0, 6000)
    assert set(labels["sensor_scales"]["press-01"]) == set(SENSORS)


def test_only_started_faults_are_reported() -> None:
    spec = FaultSpec(machine=2, sensor="temp_c", kind="spike", start_index=10, duration=1)
    sim = _sim(faults=[spec])
    list(sim.readings(3 * 10 + 2))  # machine 2 has given readings 0..9 only
    assert sim.faults == ()
    list(sim.readings(1))
    assert len(sim.faults) == 1


# ---------------------------------------------------------------- produce_readings


class _Future:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error

    def add_errback(self, fn: Any) -> None:
        if self.error is not None:
            fn(self.error)


class _FakeProducer:
    def __init__(self, fail: Sequence[int] = ()) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.flushed = False
        self.fail = set(fail)

    def send(self, topic: str, *, key: bytes, value: bytes) -> _Future:
        self.sent.append((topic, key, value))
        return _Future(RuntimeError("not acked") if len(self.sent) - 1 in self.fail else None)

    def flush(self) -> None:
        self.flushed = True


def test_produce_readings_sends_keyed_json_and_flushes() -> None:
    producer = _FakeProducer()
    readings = list(_sim().readings(12))
    assert produce_readings(producer, "telemetry", iter(readings), rate=0) == 12
    assert producer.flushed
    assert [(t, k) for t, k, _ in producer.sent] == [
        ("telemetry", r.machine_id.encode()) for r in readings
    ]
    assert [orjson.loads(v) for _, _, v in producer.sent] == [r.record for r in readings]


def test_produce_readings_paces_and_stops() -> None:
    producer = _FakeProducer()
    began = time.monotonic()
    produce_readings(producer, "t", _sim().readings(11), rate=200)
    assert time.monotonic() - began >= 0.045  # 10 gaps of 5 ms

    stop = threading.Event()
    sim = _sim()

    class StopAfterFive(_FakeProducer):  # a signal arriving while the fifth reading is sent
        def send(self, topic: str, *, key: bytes, value: bytes) -> _Future:
            if len(self.sent) == 4:
                stop.set()
            return super().send(topic, key=key, value=value)

    assert produce_readings(StopAfterFive(), "t", sim.readings(), rate=0, stop_event=stop) == 5
    assert sim.readings_emitted == 5  # the labels cover exactly what was sent


def test_produce_readings_reports_unacknowledged_readings() -> None:
    producer = _FakeProducer(fail=[3])
    with pytest.raises(DeliveryError, match="1 of 6"):
        produce_readings(producer, "t", _sim().readings(6), rate=0)
    assert producer.flushed
