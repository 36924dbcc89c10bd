"""Sensor-health codes end to end on the embedded broker: simulated machines with broken
sensors in, one health alert per broken sensor out (firing, then resolved once the test repairs
the sensor), across a restart of the service; clean machines raise nothing."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from fakes import validate_alert
from kafka_helpers import TEST_SIGNING_KEY, produce, read_topic, running_service, service_config

from anomstream.stream.alerts import iso_time
from anomstream.stream.simulator import FaultSpec, Simulator
from anomstream.stream.state_codec import StateCodec

pytestmark = pytest.mark.broker

PER_MACHINE = 700
RESTART_AT = 480  # readings per machine before the service restarts
LIMITS = [
    {"machine": "lathe-*", "sensor": "speed_rpm", "rail_max": 3000.0},  # the tachometer's end
    {"machine": "mill-*", "sensor": "temp_c", "max": 80.0},
]
# machine -> (kind, sensor, first reading of the condition, reading that fires, that resolves),
# with the service's default run lengths (stuck 150, flatline 100, railed / gap 30, range 2).
BROKEN = {
    # The simulator's stuck fault holds the value of the reading before it: the run starts there.
    "press-01": ("stuck", "pressure_bar", 299, 299 + 149, 520),
    "lathe-02": ("railed", "speed_rpm", 300, 329, 400),
    "pump-03": ("gap", "vib_rms", 300, 329, 400),
    "mill-04": ("out_of_range", "temp_c", 300, 301, 351),
    "compressor-05": ("flatline", "spare_ch", 0, 99, 600),
}
CLEAN = ("press-06", "lathe-07")


def _break(machine: str, index: int, sensors: dict[str, float], rng: random.Random) -> None:
    """The broken sensors (but for press-01's, which the simulator freezes)."""
    if machine == "lathe-02" and 300 <= index < 400:
        sensors["speed_rpm"] = 3000.0
    elif machine == "pump-03" and 300 <= index < 400:
        del sensors["vib_rms"]
    elif machine == "mill-04" and 300 <= index < 350:
        sensors["temp_c"] += 50.0  # an overheating spindle: real values, above the limit
    elif machine == "compressor-05":  # an unconnected channel, wired up at reading 600
        sensors["spare_ch"] = 0.0 if index < 600 else round(rng.uniform(1.0, 2.0), 3)


def _stream() -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]], dict[tuple[str, int], float]]:
    sim = Simulator(machines=7, seed=13, faults=[
        FaultSpec("press-01", "pressure_bar", "stuck", start_index=300, duration=220)])
    rng = random.Random(5)
    before, after, times = [], [], {}
    for r in sim.readings(7 * PER_MACHINE):
        _break(r.machine_id, r.index, r.record["sensors"], rng)
        times[(r.machine_id, r.index)] = r.ts
        (before if r.index < RESTART_AT else after).append((r.machine_id.encode(), orjson.dumps(r.record)))
    return before, after, times


def test_broken_sensors_raise_one_health_alert_each_across_a_restart(kafka_broker: str, unique: str) -> None:
    config = service_config(kafka_broker, unique, **{"health.limits": LIMITS})
    topic = config.kafka.input_topics[0]
    before, after, times = _stream()
    produce(kafka_broker, topic, before)
    with running_service(config) as service:
        service.wait_consumed(len(before))
    produce(kafka_broker, topic, after)
    with running_service(config) as service:  # restores every machine's health state
        service.wait_consumed(len(after))
        status, metrics = service.http_get("/metrics")
    assert status == 200
    alerts: list[dict[str, Any]] = [validate_alert(r.value) for r in read_topic(kafka_broker, config.kafka.alert_topic)]

    def at(machine: str, index: int) -> str:
        return iso_time(times[(machine, index)])

    for machine, (kind, sensor, start, fires, resolves) in BROKEN.items():
        health = [a for a in alerts if a["machine_id"] == machine and a["kind"] != "anomaly"]
        assert [(a["kind"], a["status"]) for a in health] == [(kind, "firing"), (kind, "resolved")], (machine, health)
        firing, resolved = health
        assert firing["alert_id"] == resolved["alert_id"]  # same episode, even across the restart
        assert [s["name"] for s in firing["sensors"]] == [sensor]
        assert firing["sensors"][0] == {"name": sensor, "score": 1.0, "contribution": 1.0}
        assert firing["started_at"] == resolved["started_at"] == at(machine, start)
        assert firing["event_time"] == at(machine, fires), (machine, firing)
        assert resolved["event_time"] == at(machine, resolves), (machine, resolved)
        assert firing["detector"]["name"] == "sensor_health" and firing["detail"]
        assert firing["severity"] == ("critical" if kind == "out_of_range" else "warning")
    # While stuck, railed or flatline was open, the sensor's values taught its model nothing
    # (out_of_range values are real: learned); the checkpointed state says so.
    codec = StateCodec(TEST_SIGNING_KEY)
    states = {r.key.decode(): codec.loads(r.value) for r in read_topic(kafka_broker, config.state.changelog_topic)}
    excluded = {"press-01": 520 - 448, "lathe-02": 400 - 329, "compressor-05": 600 - 99, "mill-04": 0}
    for machine, count in excluded.items():
        sensor = BROKEN[machine][1]
        assert states[machine].entities[sensor].learned == PER_MACHINE - count, machine
        assert states[machine].ops["health"]["sensors"][sensor]["open"] == {}
    assert states["pump-03"].entities["vib_rms"].learned == PER_MACHINE - 100  # missing: nothing to learn
    assert [a for a in alerts if a["machine_id"] in CLEAN] == []
    # The second run resolved the stuck and flatline alerts it restored as open.
    for kind in ("stuck", "flatline"):
        assert f'anomstream_alerts_total{{kind="{kind}",severity="warning",status="resolved"}} 1.0' in metrics
