"""The start-up wait: block until Kafka answers, quietly, for a bounded time, stoppable at once.

kafka-python logs every failed connection attempt at ERROR/WARNING (41 lines and ~64 s for a
missing broker before this module), and a client's bootstrap cannot be interrupted. So the wait
probes in a worker thread while the caller's thread watches the deadline and the stop event
(SIGTERM/SIGINT); kafka-python's log records are captured instead of printed, and the last of
them is the reason shown: at most one short line every few seconds, then one error.

Problems waiting cannot fix end the wait at once: a TLS certificate the client does not trust
(or that names another host) and refused SASL credentials.
"""

from __future__ import annotations

import itertools
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from anomstream.stream.errors import BrokerUnavailable

__all__ = ["quiet_kafka_logs", "wait_for_kafka", "wait_for_listener"]

log = logging.getLogger("anomstream")

# First progress line after this long, then one every REPORT_EVERY seconds.
FIRST_REPORT = 1.0
REPORT_EVERY = 5.0
# One probe's bootstrap limit: a slow TLS/SASL handshake fits, and an abandoned probe (stop
# requested, fatal error) ends soon after.
PROBE_SECONDS = 10.0
RETRY_SECONDS = 0.5

# Reasons that no amount of waiting changes: the wait ends at once with them.
_FATAL = (
    (re.compile(r"certificate verify failed: ([^(\n]+)", re.IGNORECASE),
     "TLS handshake refused: certificate verify failed: {}"),
    (re.compile(r"hostname mismatch[^(\n]*|doesn't match[^(\n]*", re.IGNORECASE),
     "TLS handshake refused: {}"),
    (re.compile(r"(?:SaslAuthenticationFailedError|Authentication failed)[: ]*([^\n]*)", re.IGNORECASE),
     "SASL authentication refused: {}"),
    (re.compile(r"does not support \S+ sasl mechanism[^\n]*", re.IGNORECASE), "SASL refused: broker {}"),
    # kafka-python 3.0.12 cannot read a SCRAM server-final message that is an error ("e=...",
    # RFC 5802; Tansu sends "e=unknown-user") and fails on the missing "v" with KeyError('v').
    (re.compile(r"(?:failed|lost): 'v'$"),
     "SASL authentication refused: the broker rejected the SCRAM credentials"),
)


# kafka-python's lines that only say it is retrying or gave up, not why.
_SUMMARY = re.compile(r"^Bootstrap failed|not ready; waiting|Unable to bootstrap")


class _Capture(logging.Handler):
    """Keeps kafka-python's last warning/error message; notices fatal ones.

    With `threads`, only records logged by threads of those names count: every capture sees
    every `kafka` record, and one probe must not take another's (an abandoned one's) errors."""

    def __init__(self, threads: frozenset[str] | None = None) -> None:
        super().__init__(logging.WARNING)
        self.threads = threads
        self.last: str = ""
        self.fatal: str = ""
        self.fatal_seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.threads is not None and record.threadName not in self.threads:
            return
        message = record.getMessage()
        if not _SUMMARY.search(message):  # keep the cause, not "gave up" / "retrying"
            self.last = message
        if not self.fatal:
            for pattern, template in _FATAL:
                match = pattern.search(message)
                if match:
                    detail = (match.group(1) if match.groups() else match.group(0)).strip(" :.")
                    self.fatal = template.format(detail or message)
                    self.fatal_seen.set()
                    break


_quiet_lock = threading.Lock()
_quiet_depth = 0
_propagated = True  # the `kafka` logger's setting before the first open block
_probe_numbers = itertools.count(1)


@contextmanager
def quiet_kafka_logs(capture: _Capture | None = None) -> Iterator[_Capture]:
    """Route the `kafka` loggers into `capture` (a new one by default) while the block runs;
    blocks may nest and overlap across threads: output comes back when the last one ends."""
    global _quiet_depth, _propagated
    logger = logging.getLogger("kafka")
    capture = capture if capture is not None else _Capture()
    logger.addHandler(capture)
    with _quiet_lock:
        if _quiet_depth == 0:
            _propagated = logger.propagate
        _quiet_depth += 1
        logger.propagate = False
    try:
        yield capture
    finally:
        logger.removeHandler(capture)
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                logger.propagate = _propagated


def _short(message: str) -> str:
    """kafka-python's "Connection failed: KafkaConnectionError: X (backoff 0.1 secs)" -> "X"."""
    message = message.rsplit("Error: ", 1)[-1]
    message = re.sub(r"\s*\((?:_ssl\.c:\d+|backoff [^)]*)\)", "", message)
    return message.strip() or "no answer"


def _tcp_reason(servers: Sequence[str], timeout: float) -> str | None:
    """None when some bootstrap server accepts a TCP connection, else why none did."""
    reason = "no bootstrap server given"
    for server in servers:
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout=timeout):
                return None
        except socket.gaierror as exc:
            reason = f"cannot resolve {host}: {exc.strerror}"
        except (OSError, ValueError) as exc:
            reason = (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).lower()
    return reason


def wait_for_listener(bootstrap_servers: str, timeout: float) -> None:
    """Block until some bootstrap server accepts TCP connections, or raise `BrokerUnavailable`."""
    servers = [s.strip() for s in bootstrap_servers.split(",") if s.strip()]
    deadline = time.monotonic() + timeout
    while (reason := _tcp_reason(servers, 1.0)) is not None:
        if time.monotonic() >= deadline:
            raise BrokerUnavailable(f"nothing listens at {bootstrap_servers} after {timeout:g} s: {reason}")
        time.sleep(0.1)


def _probe(
    servers: Sequence[str], options: Mapping[str, Any], seconds: float, client_id: str,
    capture: _Capture, result: list[BaseException | None],
) -> None:
    """One bootstrap + metadata request (in a worker thread); the outcome lands in `result`.

    The worker, not the waiting thread, keeps kafka-python quiet: a probe abandoned on stop
    or on a fatal error stays silent until it ends."""
    from kafka import KafkaAdminClient

    with quiet_kafka_logs(capture):
        try:
            admin = KafkaAdminClient(
                **{"bootstrap_servers": list(servers),
                   "request_timeout_ms": int(seconds * 1000), **options, "client_id": client_id,
                   "bootstrap_timeout_ms": int(seconds * 1000)}
            )
            try:
                admin.list_topics()
            finally:
                admin.close()
            result.append(None)
        except Exception as exc:  # noqa: BLE001 - kafka-python raises several unrelated types here
            result.append(exc)


def wait_for_kafka(
    bootstrap_servers: str,
    timeout: float = 30.0,
    *,
    client_options: Mapping[str, Any] | None = None,
    stop: threading.Event | None = None,
) -> bool:
    """Block until the cluster answers a metadata request: True; False when `stop` is set first.

    Raises `BrokerUnavailable` after `timeout` seconds, or at once for a refused TLS
    certificate or SASL login, naming the reason. `client_options` are the kafka-python
    settings every client of the service gets (security: TLS, SASL; `bootstrap_servers`, if
    present, is ignored in favour of the argument); `stop` is set by SIGTERM/SIGINT.
    """
    stop = stop if stop is not None else threading.Event()
    options = {k: v for k, v in (client_options or {}).items() if k != "bootstrap_servers"}
    servers = [s.strip() for s in bootstrap_servers.split(",") if s.strip()]
    started = time.monotonic()
    deadline = started + timeout
    next_report = started + FIRST_REPORT
    reason = "no answer"
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        tcp = _tcp_reason(servers, min(2.0, remaining))
        if tcp is None:
            # A client id (so an IO thread name, "kafka-io-<id>") of its own for each probe.
            number = next(_probe_numbers)
            client_id = f"{options.get('client_id') or 'anomstream'}-probe-{number}"
            worker_name = f"anomstream-kafka-probe-{number}"
            capture = _Capture(frozenset({worker_name, f"kafka-io-{client_id}"}))
            result: list[BaseException | None] = []
            worker = threading.Thread(
                target=_probe,
                args=(servers, options, min(PROBE_SECONDS, max(remaining, 1.0)), client_id, capture, result),
                name=worker_name, daemon=True,
            )
            worker.start()
            while worker.is_alive() and not stop.is_set() and not capture.fatal_seen.is_set():
                worker.join(0.05)
            if capture.fatal:
                raise BrokerUnavailable(f"cannot connect to Kafka at {bootstrap_servers}: {capture.fatal}")
            if result and result[0] is None:
                return True
            if stop.is_set():
                break
            reason = _short(capture.last or (str(result[0]) if result else "") or "no answer")
        else:
            reason = tcp
        now = time.monotonic()
        if now >= next_report and now < deadline:
            log.warning(
                "waiting for Kafka at %s (%.0f s of %.0f s): %s",
                bootstrap_servers, now - started, timeout, reason,
            )
            next_report = now + REPORT_EVERY
        stop.wait(min(RETRY_SECONDS, max(0.0, deadline - now)))
    if stop.is_set():
        log.info("stop requested while waiting for Kafka at %s", bootstrap_servers)
        return False
    raise BrokerUnavailable(f"no Kafka broker answered at {bootstrap_servers} within {timeout:g} s: {reason}")
