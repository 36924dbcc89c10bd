"""Fail fast without a broker: the start-up wait is bounded, quiet and stoppable at once."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import threading
import time

import pytest
from kafka_helpers import wait_until
from process_helpers import ANOMSTREAM

from anomstream.stream.broker import free_port, wait_for_kafka
from anomstream.stream.errors import BrokerUnavailable
from anomstream.stream.kafka_wait import _Capture



def _run_without_broker(timeout_seconds: float | None = None) -> tuple[subprocess.Popen[str], int]:
    port = free_port()  # nothing listens there
    env = {**os.environ, "ANOMSTREAM_STATE__SIGNING_KEY": "anomstream-test-signing-key"}
    if timeout_seconds is not None:
        env["ANOMSTREAM_KAFKA__STARTUP_TIMEOUT_SECONDS"] = str(timeout_seconds)
    process = subprocess.Popen(
        [*ANOMSTREAM, "run", "--bootstrap-servers", f"127.0.0.1:{port}", "--metrics-port", "0",
         "--metrics-host", "127.0.0.1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    return process, port


def _lines_until_waiting(process: subprocess.Popen[str]) -> list[str]:
    """Read the child's output up to its first "waiting for Kafka" line."""
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if "waiting for Kafka" in line:
            return lines
    raise AssertionError("exited before waiting:\n" + "\n".join(lines))


def test_missing_broker_ends_after_the_timeout_in_a_few_short_lines() -> None:
    process, port = _run_without_broker(timeout_seconds=5)
    try:
        lines = _lines_until_waiting(process)
        # The wait began about 1 s before its first line (the interpreter's start-up, slow on a
        # busy machine, does not count).
        began = time.monotonic() - 1.0
        rest, _ = process.communicate(timeout=30)
        waited = time.monotonic() - began
    finally:
        process.kill()
    lines += rest.splitlines()
    assert process.returncode not in (0, 1), lines  # 69 once cli.py maps BrokerUnavailable (helper "layout")
    assert 4.0 <= waited <= 8.0, (waited, lines)
    assert len(lines) <= 5 and all(len(line) <= 160 for line in lines), lines
    assert not any("Traceback" in line or "kafka." in line for line in lines), lines
    assert lines[-1] == f"anomstream: no Kafka broker answered at 127.0.0.1:{port} within 5 s: connection refused"
    waiting = [line for line in lines if "waiting for Kafka" in line]
    assert waiting and waiting[0].endswith(f"waiting for Kafka at 127.0.0.1:{port} (1 s of 5 s): connection refused")


def test_sigterm_during_the_wait_ends_it_at_once() -> None:
    process, _ = _run_without_broker()  # the default timeout: 60 s
    try:
        _lines_until_waiting(process)
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.stdout is not None
        arrivals = [(time.monotonic() - sent, line) for line in process.stdout]
        process.wait(30)
        exited = time.monotonic() - sent
    finally:
        process.kill()
    assert process.returncode == 0, arrivals  # nothing had started: a clean stop
    stopped = [took for took, line in arrivals if "stop requested while waiting for Kafka" in line]
    assert stopped and stopped[0] < 1.0, arrivals  # the wait itself ends at once (measured: < 5 ms)
    # The process then exits: Python's own teardown of ~1,500 modules takes ~1-2 s on a busy
    # 2-core machine (measured: 1.7-2.2 s under load 6), nothing of anomstream's.
    assert exited < 5.0, (exited, arrivals)
    assert not any("Traceback" in line for _, line in arrivals)


def test_stop_event_and_quiet_kafka_logs_in_process(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    stop = threading.Event()
    outcome: list[object] = []

    def wait() -> None:
        outcome.append(wait_for_kafka(f"127.0.0.1:{port}", 60, stop=stop))

    caplog.set_level(logging.DEBUG)
    waiter = threading.Thread(target=wait)
    waiter.start()
    wait_until(lambda: any("waiting for Kafka" in r.getMessage() for r in caplog.records), 10, what="a line")
    stop.set()
    waiter.join(2)
    assert not waiter.is_alive() and outcome == [False]


def test_kafka_python_errors_are_captured_and_the_cause_given(caplog: pytest.LogCaptureFixture) -> None:
    # A TCP server that accepts and hangs up at once: kafka-python itself fails (and would log
    # several ERROR/WARNING lines per attempt); the wait shows one cause, and no kafka.* record.
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    port = server.getsockname()[1]
    closing = threading.Event()

    def hang_up() -> None:
        server.settimeout(0.2)
        while not closing.is_set():
            try:
                conn, _ = server.accept()
                conn.close()
            except OSError:
                continue

    acceptor = threading.Thread(target=hang_up, daemon=True)
    acceptor.start()
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(BrokerUnavailable) as info:
            wait_for_kafka(f"127.0.0.1:{port}", 2.5)
    finally:
        closing.set()
        acceptor.join(2)
        server.close()
    # The cause kafka-python saw (which of the two depends on timing), not "Unable to bootstrap".
    assert re.fullmatch(rf"no Kafka broker answered at 127\.0\.0\.1:{port} within 2\.5 s: "
                        r"(socket disconnected|\[Errno 104\] Connection reset by peer)", str(info.value))
    assert not [r for r in caplog.records if r.name.startswith("kafka")]
    assert len([r for r in caplog.records if r.name == "anomstream"]) <= 2


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (("Connection failed: KafkaConnectionError: Handshake failed: [SSL: CERTIFICATE_VERIFY_FAILED] "
          "certificate verify failed: unable to get local issuer certificate (_ssl.c:1006)"),
         "TLS handshake refused: certificate verify failed: unable to get local issuer certificate"),
        (("Connection failed: KafkaConnectionError: Handshake failed: [SSL: CERTIFICATE_VERIFY_FAILED] "
          "certificate verify failed: Hostname mismatch, certificate is not valid for 'kafka-1'. (_ssl.c:1006)"),
         "TLS handshake refused: certificate verify failed: Hostname mismatch, certificate is not valid for 'kafka-1'"),
        # What kafka-python logs for Apache Kafka's refusal of a login:
        (("Connection failed: SaslAuthenticationFailedError: Authentication failed during authentication "
          "due to invalid credentials with SASL mechanism SCRAM-SHA-512"),
         ("SASL authentication refused: Authentication failed during authentication due to invalid "
          "credentials with SASL mechanism SCRAM-SHA-512")),
        (("Connection failed: UnsupportedSaslMechanismError: Kafka broker does not support PLAIN sasl "
          "mechanism. Enabled mechanisms: ['SCRAM-SHA-512']"),
         "SASL refused: broker does not support PLAIN sasl mechanism. Enabled mechanisms: ['SCRAM-SHA-512']"),
        ("<KafkaConnection node_id=bootstrap-0>: Connection lost: 'v'",
         "SASL authentication refused: the broker rejected the SCRAM credentials"),
        ("Connection failed: KafkaConnectionError: 111 ECONNREFUSED", ""),  # retried: not fatal
    ],
)
def test_which_kafka_python_errors_end_the_wait_at_once(message: str, reason: str) -> None:
    capture = _Capture()
    capture.emit(logging.makeLogRecord({"name": "kafka.net.manager", "levelno": logging.ERROR, "msg": message}))
    assert capture.fatal == reason
    assert capture.fatal_seen.is_set() == bool(reason)
