"""One HTTP port: `/metrics` (Prometheus), `/healthz` (liveness), `/readyz` (readiness), and
the machine drill-down `/machines/{id}` (JSON; `anomstream.stream.drilldown`).

- `/metrics` is prometheus_client's own exposition (its WSGI app): text or OpenMetrics by the
  `Accept` header, gzip when the scraper accepts it, `name[]=` filtering. Every path answers
  HEAD too (headers only), for probes that check without a body.

- `/healthz` is 200 while the processing loop keeps turning (it touches `Health.beat()` every
  poll); a loop stuck for longer than `stall_seconds` makes it 503, so an orchestrator restarts us.
- `/readyz` is 200 only when the broker is reachable and this instance holds partitions.

- `/machines/{id}` (the id URL-encoded: `press%2F07` for `press/07`) is one machine's JSON,
  404 with a JSON error for a machine this instance does not hold; `/machines` the counts and a
  bounded list of the machines with open alerts. Both are 503 until the pipeline exists (the
  server starts first, to answer probes while the broker is awaited) and while a batch holds
  the pipeline for longer than the drill-down waits.

The server runs in a daemon thread; it shares `Health` with the loop, and reads the pipeline's
state only through the drill-down, under the pipeline's lock.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import unquote

from prometheus_client import CollectorRegistry, make_wsgi_app

from anomstream.stream.drilldown import Busy

__all__ = ["Health", "HttpServer", "MachineViews"]

MACHINES = "/machines"
PATHS = ["/metrics", "/healthz", "/readyz", MACHINES, MACHINES + "/{id}"]


class MachineViews(Protocol):
    """What `/machines` serves (`anomstream.stream.drilldown.DrillDown`); raises `Busy` when
    it cannot read the state in time."""

    def machine(self, machine: str) -> dict[str, Any] | None: ...

    def machines(self) -> dict[str, Any]: ...


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
    _head = False

    def do_HEAD(self) -> None:
        self._head = True
        self.do_GET()

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/metrics":
            self._send_metrics(query)
        elif path == "/healthz":
            self._send_json(*self.server.health.liveness())
        elif path == "/readyz":
            self._send_json(*self.server.health.readiness())
        elif path == MACHINES or path.startswith(MACHINES + "/"):
            self._send_machines(path[len(MACHINES) + 1:])
        else:
            self._send_json(False, {"error": "not found", "paths": PATHS}, 404)

    def _send_machines(self, quoted: str) -> None:
        views = self.server.machines
        if views is None:
            self._send_body(503, {"error": "starting: the pipeline is not built yet"})
            return
        try:
            machine = unquote(quoted, errors="strict")
        except UnicodeDecodeError:
            self._send_body(400, {"error": "the machine id is not URL-encoded UTF-8"})
            return
        try:
            body = views.machine(machine) if machine else views.machines()
        except Busy as exc:
            self._send_body(503, {"error": str(exc)})
            return
        except Exception as exc:  # noqa: BLE001 - a bug here costs this request, not the loop
            self._send_body(500, {"error": f"{type(exc).__name__}: {exc}"})
            return
        if body is None:
            self._send_body(404, {"error": "machine not held by this instance", "machine_id": machine})
        else:
            self._send_body(200, body)

    def _send_body(self, status: int, body: dict[str, Any]) -> None:
        # allow_nan=False: the drill-down already made its values strict JSON; fail loudly if not.
        payload = json.dumps(body, allow_nan=False).encode()
        self._send(status, payload, headers=[("Content-Type", "application/json")])

    def _send_metrics(self, query: str) -> None:
        """Hand the request to prometheus_client's WSGI app: it negotiates the format and the
        compression exactly as its own servers do."""
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/metrics",
            "QUERY_STRING": query,
            "HTTP_ACCEPT": self.headers.get("Accept", ""),
            "HTTP_ACCEPT_ENCODING": self.headers.get("Accept-Encoding", ""),
        }
        reply: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]]) -> None:
            reply.update(status=int(status.split(" ", 1)[0]), headers=headers)

        payload = b"".join(self.server.metrics_app(environ, start_response))
        self._send(reply["status"], payload, headers=reply["headers"])

    def _send_json(self, ok: bool, body: dict[str, Any], status: int | None = None) -> None:
        self._send_body(status or (200 if ok else 503), {"status": "ok" if ok else "unavailable", **body})

    def _send(self, status: int, payload: bytes, *, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if not self._head:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes every few seconds would drown the service log


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    metrics_app: Any  # prometheus_client's WSGI exposition app
    health: Health
    machines: MachineViews | None = None


class HttpServer:
    """Serve metrics and health on `host:port` (port 0 picks a free one) in a daemon thread."""

    def __init__(self, *, host: str, port: int, registry: CollectorRegistry, health: Health) -> None:
        self._server = _Server((host, port), _Handler)
        self._server.metrics_app = make_wsgi_app(registry)
        self._server.health = health
        self._thread = threading.Thread(target=self._server.serve_forever, name="anomstream-http", daemon=True)

    def serve_machines(self, views: MachineViews | None) -> None:
        """Answer `/machines` from `views` from now on (None: 503 again)."""
        self._server.machines = views

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
