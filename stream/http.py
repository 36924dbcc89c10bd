"""One HTTP port: `/metrics` (Prometheus), `/healthz` (liveness), `/readyz` (readiness).

- `/healthz` is 200 while the processing loop keeps turning (it touches `Health.beat()` every
  poll); a loop stuck for longer than `stall_seconds` makes it 503, so an orchestrator restarts us.
- `/readyz` is 200 only when the broker is reachable and this instance holds partitions.

The server runs in a daemon thread; `Health` is the only state it shares with the loop.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["Health", "HttpServer"]


class Health:
    """Liveness and readiness as the processing loop reports them."""

    def __init__(self, *, stall_seconds: float = 120.0, clock: Any = time.monotonic) -> None:
        self.stall_seconds = stall_seconds
        self._clock = clock
        self._last_beat = clock()
        self._lock = threading.Lock()
        self._ready = False
        self._reason = "starting"
        self._details: dict[str, Any] = {}

    def beat(self) -> None:
        self._last_beat = self._clock()

    def set_ready(self, ready: bool, reason: str = "", **details: Any) -> None:
        with self._lock:
            self._ready = ready
            self._reason = "" if ready else reason
            self._details = details

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        silent = self._clock() - self._last_beat
        return silent <= self.stall_seconds, {"loop_silent_seconds": round(silent, 3)}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        with self._lock:
            body = {"reason": self._reason, **self._details}
            return self._ready, body


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._send_json(*self.server.health.liveness())
        elif path == "/readyz":
            self._send_json(*self.server.health.readiness())
        else:
            self._send_json(False, {"error": "not found", "paths": ["/metrics", "/healthz", "/readyz"]}, 404)

    def _send_json(self, ok: bool, body: dict[str, Any], status: int | None = None) -> None:
        payload = json.dumps({"status": "ok" if ok else "unavailable", **body}).encode()
        self._send(status or (200 if ok else 503), payload, "application/json")

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes every few seconds would drown the service log


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    registry: CollectorRegistry
    health: Health


class HttpServer:
    """Serve metrics and health on `host:port` (port 0 picks a free one) in a daemon thread."""

    def __init__(self, *, host: str, port: int, registry: CollectorRegistry, health: Health) -> None:
        self._server = _Server((host, port), _Handler)
        self._server.registry = registry
        self._server.health = health
        self._thread = threading.Thread(target=self._server.serve_forever, name="anomstream-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
