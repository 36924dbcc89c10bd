"""Silent machines on a real broker: the service's timer raises `kind: silent` with no records
arriving, the machine's next reading resolves it, and an open silent alert survives a restart
and a rebalance (restored, not fired again)."""

from __future__ import annotations

import random
import time
from typing import Any

import orjson
import pytest
from fakes import validate_alert
from kafka import KafkaProducer
from kafka_helpers import RunningService, read_topic, running_service, service_config, wait_until
from prometheus_client.parser import text_string_to_metric_families

from anomstream.stream.config import Config

pytestmark = pytest.mark.broker

# A 1 s machine is silent 3 s after its last reading; a 600 s one only after 30 minutes.
SILENCE = {
    "silence.factor": 3.0,
    "silence.min_silence_seconds": 2.0,
    "silence.min_readings": 5,
    "silence.check_interval_seconds": 0.25,
    "state.checkpoint_interval_seconds": 0.5,
}
READINGS = 12
FAST_SECONDS = 3.0  # factor x the fast machines' 1 s interval


class Fleet:
    """Machines with their own event-time interval, each produced to an explicit partition."""

    def __init__(self, config: Config, machines: dict[str, tuple[int, float]]) -> None:
        self.config = config
        self.machines = machines  # machine -> (partition, usual interval in event seconds)
        self.sent = {m: 0 for m in machines}
        self.start = time.time() - 100_000.0
        self.rng = random.Random(5)

    def report(self, *machines: str, count: int = 1) -> int:
        producer = KafkaProducer(bootstrap_servers=self.config.kafka.bootstrap_servers, acks="all")
        total = 0
        for machine in machines or tuple(self.machines):
            partition, every = self.machines[machine]
            for _ in range(count):
                ts = self.start + self.sent[machine] * every
                value = {"machine_id": machine, "ts": ts, "sensors": {"temp_c": self.rng.gauss(60.0, 1.0)}}
                producer.send(self.config.kafka.input_topics[0], key=machine.encode(),
                              value=orjson.dumps(value), partition=partition)
                self.sent[machine] += 1
                total += 1
        producer.flush()
        producer.close()
        return total


def _alerts(config: Config) -> list[dict[str, Any]]:
    return [validate_alert(r.value) for r in read_topic(config.kafka.bootstrap_servers, config.kafka.alert_topic)]


def _silent(config: Config, machine: str, status: str) -> list[dict[str, Any]]:
    return [a for a in _alerts(config) if a["machine_id"] == machine and a["kind"] == "silent"
            and a["status"] == status]


def _wait_silent(config: Config, status: str, *machines: str) -> None:
    wait_until(lambda: all(_silent(config, m, status) for m in machines), 30,
               what=f"{status} silent alerts of {machines}")


def _sample(service: RunningService, name: str) -> float:
    status, text = service.http_get("/metrics")
    assert status == 200
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    raise LookupError(name)


def _holds(service: RunningService, partitions: int) -> bool:
    """True once `service` holds `partitions` input partitions."""
    return _sample(service, "anomstream_partitions_assigned") == partitions


def _fleet(kafka_broker: str, unique: str, machines: dict[str, tuple[int, float]]) -> tuple[Fleet, int]:
    """A fleet on its own topics, its first READINGS readings per machine produced."""
    fleet = Fleet(service_config(kafka_broker, unique, **SILENCE), machines)
    return fleet, fleet.report(count=READINGS)


def test_a_machine_that_stops_goes_silent_on_the_timer_and_resolves_when_back(
    kafka_broker: str, unique: str
) -> None:
    fleet, sent = _fleet(kafka_broker, unique, {"press-01": (0, 1.0), "kiln-02": (1, 600.0)})
    config = fleet.config
    with running_service(config) as service:
        service.wait_consumed(sent)
        consumed_at = time.monotonic()
        # Nothing more is produced: only the timer can raise it.
        firing = wait_until(lambda: _silent(config, "press-01", "firing"), 30, what="silent alert")
        waited = time.monotonic() - consumed_at
        assert FAST_SECONDS - 0.5 <= waited, waited  # not before factor x interval
        assert len(firing) == 1
        alert = firing[0]
        assert alert["severity"] == "warning" and alert["score"] == 1.0
        assert [s["name"] for s in alert["sensors"]] == ["temp_c"]
        assert alert["detector"]["name"] == "presence"
        assert alert["started_at"].startswith(time.strftime(  # the last reading's event time
            "%Y-%m-%dT%H:%M", time.gmtime(fleet.start + (READINGS - 1) * 1.0)))
        assert alert["detail"].endswith("(usual interval 1 s)"), alert["detail"]
        assert _sample(service, "anomstream_machines_silent") == 1
        # The 600 s machine is not silent, and the fast one fires once.
        time.sleep(2.0)
        assert [a["machine_id"] for a in _alerts(config)] == ["press-01"]
        fleet.report("press-01")
        resolved = wait_until(lambda: _silent(config, "press-01", "resolved"), 30, what="resolution")
        assert resolved[0]["alert_id"] == alert["alert_id"]
        assert resolved[0]["detail"].startswith("reported again after ")
    assert [(a["kind"], a["status"]) for a in _alerts(config)] == [("silent", "firing"), ("silent", "resolved")]


def test_an_open_silent_alert_survives_a_restart_and_resolves_after_it(
    kafka_broker: str, unique: str
) -> None:
    fleet, sent = _fleet(kafka_broker, unique, {"press-01": (0, 1.0), "press-02": (1, 1.0), "kiln-03": (1, 600.0)})
    config = fleet.config
    with running_service(config) as first:
        first.wait_consumed(sent)
        _wait_silent(config, "firing", "press-01", "press-02")
    # Stopped while they are silent: their open alerts are in the checkpoint.
    with running_service(config) as second:
        wait_until(lambda: _holds(second, 2), 60, what="assigned")
        # Longer than a silence: an instance that forgot the open alerts would fire them again.
        time.sleep(FAST_SECONDS + 2.0)
        assert len(_silent(config, "press-01", "firing")) == 1
        assert len(_silent(config, "press-02", "firing")) == 1
        assert _sample(second, "anomstream_machines_silent") == 2  # restored, not even thawed
        fleet.report("press-01")
        resolved = wait_until(lambda: _silent(config, "press-01", "resolved"), 30, what="resolution")
        assert resolved[0]["alert_id"] == _silent(config, "press-01", "firing")[0]["alert_id"]
        # The machine that is still away stays one open alert.
        time.sleep(1.0)
        assert not _silent(config, "press-02", "resolved")
    statuses = [(a["machine_id"], a["status"]) for a in _alerts(config)]
    assert sorted(statuses) == [("press-01", "firing"), ("press-01", "resolved"), ("press-02", "firing")]


def test_after_an_outage_of_the_service_silence_counts_from_the_assignment(
    kafka_broker: str, unique: str
) -> None:
    fleet, sent = _fleet(kafka_broker, unique, {"press-01": (0, 1.0)})
    config = fleet.config
    with running_service(config) as first:
        first.wait_consumed(sent)  # stopped at once: not silent yet
    outage = FAST_SECONDS + 3.0
    time.sleep(outage)  # anomstream is down for longer than a silence
    assert not _alerts(config)
    with running_service(config) as second:
        wait_until(lambda: _holds(second, 2), 60, what="assigned")
        held = time.monotonic()
        # Restored but never read since: found silent from the store's index of headers.
        firing = wait_until(lambda: _silent(config, "press-01", "firing"), 30, what="silent alert")
        assert time.monotonic() - held >= FAST_SECONDS - 1.0  # not at once after the outage
        away = float(firing[0]["detail"].split()[3])  # "no reading for N s (...)"
        assert away >= outage + FAST_SECONDS - 1.0, firing[0]["detail"]  # counted from the reading


def test_open_silent_alerts_move_with_their_partition_in_a_rebalance(
    kafka_broker: str, unique: str
) -> None:
    fleet, sent = _fleet(kafka_broker, unique, {"press-01": (0, 1.0), "press-02": (1, 1.0)})
    config = fleet.config
    with running_service(config) as first:
        first.wait_consumed(sent)
        _wait_silent(config, "firing", "press-01", "press-02")  # on the first instance
        with running_service(config) as second:
            wait_until(lambda: _holds(first, 1) and _holds(second, 1), 60, what="one partition each")
            time.sleep(FAST_SECONDS + 2.0)  # no instance fires the moved alert again
            assert len(_silent(config, "press-01", "firing")) == 1
            assert len(_silent(config, "press-02", "firing")) == 1
            assert _sample(first, "anomstream_machines_silent") == 1
            assert _sample(second, "anomstream_machines_silent") == 1
            fleet.report()
            _wait_silent(config, "resolved", "press-01", "press-02")  # each by its new owner
    alerts = _alerts(config)
    assert sorted((a["machine_id"], a["status"]) for a in alerts) == [
        ("press-01", "firing"), ("press-01", "resolved"), ("press-02", "firing"), ("press-02", "resolved")]
    for machine in ("press-01", "press-02"):
        assert len({a["alert_id"] for a in alerts if a["machine_id"] == machine}) == 1
