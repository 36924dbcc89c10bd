"""Readiness from the broker connection, refreshed in its own thread.

The processing loop can block for up to the delivery/commit timeouts (30 s) while the broker is
away, so readiness cannot be left to the loop: a thread looks every `interval` seconds at the
consumer's open broker connections (kafka-python drops a connection as soon as the broker
refuses or resets it, and keeps none while it retries) and at what the loop reports (partitions
held, restoring), then sets `/readyz`, `anomstream_ready` and `anomstream_broker_connected`.
Each loss and each return of the broker is logged once, with how long it was away.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from anomstream.stream.http import Health
from anomstream.stream.metrics import Metrics

__all__ = ["ReadinessMonitor", "consumer_connected"]

log = logging.getLogger(__name__)


def consumer_connected(consumer: Any) -> bool:
    """True while the consumer holds at least one open broker connection (kafka-python's
    public `connection-count` client metric). Without client metrics there is no telling:
    assume connected, so readiness falls back to holding partitions."""
    count = (consumer.metrics() or {}).get("consumer-metrics", {}).get("connection-count")
    return count is None or count > 0


class ReadinessMonitor:
    """Sets readiness from `connected()` and `state()`; `state()` returns (partitions held,
    restoring). Start with `start()`, end with `stop()`."""

    def __init__(
        self,
        *,
        health: Health,
        metrics: Metrics,
        connected: Callable[[], bool],
        state: Callable[[], tuple[int, bool]],
        interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.health = health
        self.metrics = metrics
        self._connected = connected
        self._state = state
        self.interval = interval
        self._clock = clock
        self.disconnected_since: float | None = None  # clock() when the broker was lost
        self._seen_connected = False  # a client that has not connected yet has lost nothing
        self._lock = threading.Lock()  # refreshed by this thread and by the loop's callbacks
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="anomstream-readiness", daemon=True)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def connected(self) -> bool:
        return self.disconnected_since is None

    def outage_seconds(self) -> float:
        """How long the broker has been unreachable (0 while connected)."""
        since = self.disconnected_since
        return 0.0 if since is None else self._clock() - since

    def start(self) -> ReadinessMonitor:
        self.refresh()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - a failed look must not end readiness reporting
                log.debug("readiness refresh failed", exc_info=True)

    def refresh(self) -> bool:
        """Look once; return whether the instance is ready."""
        with self._lock:
            return self._refresh()

    def _refresh(self) -> bool:
        connected = self._connected()
        self._track(connected)
        partitions, restoring = self._state()
        ready = connected and partitions > 0 and not restoring
        if ready:
            reason = ""
        elif not connected:
            reason = "broker unreachable"
        elif restoring:
            reason = "restoring state"
        else:
            reason = "no partitions assigned"
        details: dict[str, Any] = {"partitions": partitions}
        if not connected:
            details["broker_unreachable_seconds"] = round(self.outage_seconds(), 1)
        self.health.set_ready(ready, reason, **details)
        self.metrics.ready.set(1 if ready else 0)
        return ready

    def _track(self, connected: bool) -> None:
        now = self._clock()
        if not self._seen_connected:
            self._seen_connected = connected
            self.metrics.broker_connected.set(1 if connected else 0)
            return
        if not connected and self.disconnected_since is None:
            self.disconnected_since = now
            self.metrics.broker_connected.set(0)
            self.metrics.broker_disconnects.inc()
            log.warning("Kafka broker unreachable: not ready; kafka-python keeps reconnecting")
        elif connected and self.disconnected_since is not None:
            log.warning("Kafka broker reachable again after %.1f s", now - self.disconnected_since)
            self.disconnected_since = None
            self.metrics.broker_connected.set(1)
        elif connected:
            self.metrics.broker_connected.set(1)
