"""A Kafka-protocol broker that keeps its data across restarts, for broker-outage tests.

Tansu's in-memory engine forgets every topic and committed offset when it stops, and the
vendored Tansu has no PostgreSQL or SQLite engine; its S3 engine does keep them. `S3Server` runs
`moto_server` (PyPI `moto[server]`) on loopback as that S3, and `PersistentBroker` runs Tansu on
it, with `outage(seconds)` to take the broker down and bring it back on the same port.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from process_helpers import ServiceProcess

from anomstream.stream.broker import EmbeddedBroker, die_with_parent, free_port, stop_process
from anomstream.stream.config import Config

__all__ = ["Exit", "Outage", "PersistentBroker", "S3Server", "Sample", "Supervisor", "Watcher"]

# moto accepts any credentials; Tansu (the Rust object_store crate) insists on having some.
_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "anomstream-test",
    "AWS_SECRET_ACCESS_KEY": "anomstream-test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class S3Server:
    """`moto_server` on `127.0.0.1:<port>` with one bucket, `bucket`, created at start."""

    def __init__(self, bucket: str = "anomstream") -> None:
        self.bucket = bucket
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """What a client of this S3 (Tansu) needs in its environment."""
        return {"AWS_ENDPOINT": self.endpoint, "AWS_ALLOW_HTTP": "true", **_CREDENTIALS}

    def start(self, timeout: float = 30.0) -> S3Server:
        script = Path(sys.executable).with_name("moto_server")
        self._process = subprocess.Popen(
            [str(script), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - no orphan if the test run is killed
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                # moto's S3 creates a bucket on an anonymous `PUT /<bucket>`.
                request = urllib.request.Request(f"{self.endpoint}/{self.bucket}", method="PUT")
                with urllib.request.urlopen(request, timeout=2):
                    return self
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto_server did not start on port {self.port}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        process, self._process = self._process, None
        stop_process(process)

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class PersistentBroker:
    """Tansu on `s3`: topics, records and committed offsets survive `outage()`."""

    def __init__(self, s3: S3Server) -> None:
        self.broker = EmbeddedBroker(
            port=free_port(), storage_engine=f"s3://{s3.bucket}/", env=s3.env(),
            startup_timeout=60.0,
        )

    @property
    def bootstrap_servers(self) -> str:
        return self.broker.bootstrap_servers

    def start(self) -> PersistentBroker:
        self.broker.start()
        return self

    def stop(self) -> None:
        self.broker.stop()

    def outage(self, seconds: float) -> Outage:
        """Stop the broker, keep it down `seconds`, start it again on the same port.

        Call it from the thread that started the broker, which must outlive it: Tansu gets
        PR_SET_PDEATHSIG, which the kernel fires when the *thread* that forked it ends.
        """
        self.broker.stop()
        stopped = time.monotonic()
        time.sleep(seconds)
        restarted = time.monotonic()
        self.broker.start()
        return Outage(seconds, stopped, restarted, time.monotonic())

    def __enter__(self) -> PersistentBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class Outage:
    """One broker outage, in time.monotonic() seconds."""

    planned: float  # seconds the broker was kept down
    stopped: float  # the broker process had exited
    restarted: float  # its replacement was started...
    answering: float  # ...and answered a metadata request

    @property
    def unreachable(self) -> float:
        return self.answering - self.stopped


@dataclass(frozen=True)
class Exit:
    """One `anomstream run` process that ended while supervised."""

    code: int
    started: float  # time.monotonic()
    ended: float
    output: str


class Supervisor:
    """Keeps `anomstream run` going like Docker's `restart: unless-stopped`: a process that
    exits is started again after `backoff` seconds, until `stop()`."""

    def __init__(self, config: Config, *, backoff: float = 1.0, **extra_env: str) -> None:
        self.config = config
        self.backoff = backoff
        self.extra_env = extra_env
        self.exits: list[Exit] = []
        self.current: ServiceProcess | None = None
        self._current_started = 0.0
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # start/stop of `current` against the loop
        self._thread = threading.Thread(target=self._loop, name="supervisor", daemon=True)

    @property
    def starts(self) -> int:
        return len(self.exits) + (1 if self.current is not None else 0)

    def start(self) -> Supervisor:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                if self._stopping.is_set():
                    return
                service = ServiceProcess(self.config, **self.extra_env).start()
                self.current = service
                started = self._current_started = time.monotonic()
            assert service.process is not None
            code = service.process.wait()
            if self._stopping.is_set():
                return  # stopped by us: `stop()` records the exit
            self.exits.append(Exit(code, started, time.monotonic(), service.output()))
            service.log.close()
            self._stopping.wait(self.backoff)

    def stop(self, timeout: float = 60.0) -> Exit | None:
        """SIGTERM the running process and wait: its (clean) exit, or None if none ran."""
        with self._lock:
            self._stopping.set()
            service = self.current
        if service is None or service.process is None:
            return None
        code = service.stop(timeout)
        self._thread.join(10)
        last = Exit(code, self._current_started, time.monotonic(), service.output())
        service.log.close()
        return last

    def kill(self) -> None:
        """SIGKILL whatever runs (cleanup after a failed test)."""
        self._stopping.set()
        if self.current is not None:
            self.current.kill()


@dataclass(frozen=True)
class Sample:
    """What the supervised process showed at `at` (time.monotonic())."""

    at: float
    pid: int
    readyz: int | None  # HTTP status; None: not listening (exited, or starting)
    ready: float | None  # anomstream_ready
    connected: float | None  # anomstream_broker_connected
    consumed: float | None  # anomstream_readings_consumed_total of the input topic


@dataclass
class Watcher:
    """Polls the supervised process's /readyz and /metrics every `interval` s in a thread."""

    supervisor: Supervisor
    interval: float = 0.5
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="watcher", daemon=True)

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        self._thread.join(10)

    def _loop(self) -> None:
        topic = self.supervisor.config.kafka.input_topics[0]
        consumed = f'anomstream_readings_consumed_total{{topic="{topic}"}}'
        while not self._done.wait(self.interval):
            service = self.supervisor.current
            if service is None or service.process is None:
                continue
            text = service.metrics()
            self.samples.append(Sample(
                time.monotonic(), service.process.pid, _status(service.port, "/readyz"),
                _value(text, "anomstream_ready"), _value(text, "anomstream_broker_connected"),
                _value(text, consumed),
            ))

    def between(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.at <= end]

    def last_consumed(self) -> dict[int, float]:
        """The last readings-consumed count seen of each process."""
        last: dict[int, float] = {}
        for sample in self.samples:
            if sample.consumed is not None:
                last[sample.pid] = sample.consumed
        return last


def _status(port: int, path: str) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


def _value(metrics_text: str, name: str) -> float | None:
    prefix = name + " "
    for line in metrics_text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix):])
    return None
