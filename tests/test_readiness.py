"""Readiness from the broker connection (`ReadinessMonitor`), with a fake clock and fake state."""

from __future__ import annotations

from fakes import FakeClock
from prometheus_client import CollectorRegistry

from anomstream.stream.http import Health
from anomstream.stream.metrics import Metrics
from anomstream.stream.readiness import ReadinessMonitor, consumer_connected


def test_ready_only_while_connected_with_partitions_and_not_restoring() -> None:
    registry, health, clock = CollectorRegistry(), Health(), FakeClock(100.0)
    world = {"connected": False, "partitions": 2, "restoring": False}
    monitor = ReadinessMonitor(
        health=health, metrics=Metrics(registry), clock=clock,
        connected=lambda: bool(world["connected"]),
        state=lambda: (int(world["partitions"]), bool(world["restoring"])),
    )
    value = registry.get_sample_value

    assert not monitor.refresh()  # not connected yet: not ready, but nothing was lost
    assert value("anomstream_broker_disconnects_total") == 0
    world["connected"] = True
    assert monitor.refresh() and health.readiness()[0] and value("anomstream_ready") == 1
    assert value("anomstream_broker_connected") == 1

    world["connected"] = False
    monitor.refresh()
    clock.now += 4.5
    assert not monitor.refresh()
    ready, body = health.readiness()
    assert not ready and body["reason"] == "broker unreachable"
    assert body["broker_unreachable_seconds"] == 4.5
    assert value("anomstream_ready") == 0 and value("anomstream_broker_connected") == 0
    assert value("anomstream_broker_disconnects_total") == 1
    assert monitor.outage_seconds() == 4.5

    world["connected"] = True
    world["restoring"] = True
    assert not monitor.refresh() and health.readiness()[1]["reason"] == "restoring state"
    assert value("anomstream_broker_connected") == 1 and monitor.outage_seconds() == 0
    world["restoring"], world["partitions"] = False, 0
    assert not monitor.refresh() and health.readiness()[1]["reason"] == "no partitions assigned"


def test_consumer_connected_reads_the_connection_count_metric() -> None:
    class Consumer:
        def __init__(self, metrics: dict | None) -> None:
            self._metrics = metrics

        def metrics(self) -> dict | None:
            return self._metrics

    assert consumer_connected(Consumer({"consumer-metrics": {"connection-count": 2.0}}))
    assert not consumer_connected(Consumer({"consumer-metrics": {"connection-count": 0.0}}))
    assert consumer_connected(Consumer(None))  # client metrics off: no telling, assume connected
