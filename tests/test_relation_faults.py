"""Faults that only break a relation between sensors, through the pipeline with the shipped
config: the machine-wide model alerts on the right machine, names the faulty sensor first, and
the alert resolves within 120 readings after the fault ends (the slowest of 44 detected
simulated relation faults resolved 107 readings after its end; see docs/benchmarks.md)."""

from __future__ import annotations

import orjson
import pytest
from fakes import FakeClock, records_from, validate_alert
from prometheus_client import CollectorRegistry

from anomstream.stream.config import load_config
from anomstream.stream.metrics import Metrics
from anomstream.stream.pipeline import Pipeline
from anomstream.stream.simulator import FaultSpec, Simulator

START, DURATION, PER_MACHINE = 1500, 300, 2400


def _alerts(seed: int, sensor: str) -> tuple[Simulator, list[dict]]:
    sim = Simulator(machines=2, seed=seed, start_time=1.7e9, fault_rate=0, faults=[
        FaultSpec(machine=1, sensor=sensor, kind="decouple", start_index=START, duration=DURATION),
    ])  # fmt: skip
    config = load_config(environ={}, overrides={"state.enabled": False})
    pipeline = Pipeline(config, metrics=Metrics(CollectorRegistry()), clock=FakeClock())
    records = records_from(sim.readings(2 * PER_MACHINE), partitions=1)
    alerts = []
    for i in range(0, len(records), 500):
        alerts += [validate_alert(m.value) for m in pipeline.process(records[i : i + 500]).alerts]
    return sim, alerts


@pytest.mark.parametrize(("seed", "sensor"), [(4, "current_a"), (5, "speed_rpm")])
def test_a_broken_relation_alerts_on_its_machine_and_names_its_sensor_first(seed: int, sensor: str) -> None:
    # `decouple`: the sensor follows the duty cycle half a period late, every value in its range
    sim, alerts = _alerts(seed, sensor)
    (fault,) = sim.faults
    assert [(a["machine_id"], a["status"]) for a in alerts] == [(fault.machine, "firing"), (fault.machine, "resolved")]
    firing, resolved = alerts
    assert firing["sensors"][0]["name"] == sensor
    assert sum(s["contribution"] for s in firing["sensors"]) == pytest.approx(1.0, abs=1e-3)
    assert firing["detector"]["name"].endswith("+relations")
    # readings of the machine: one partition, two machines read in turn
    fired, cleared = firing["source"]["offset"] // 2, resolved["source"]["offset"] // 2
    assert START <= fired <= START + 50
    # resolved within a bounded number of readings after the fault's end (see docs/benchmarks.md)
    assert cleared <= START + DURATION + 120
