"""The `anomstream` command as a user runs it: real processes, real signals, real broker; and
its exit codes."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import time

import orjson
import pytest
from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from kafka_helpers import produce, service_config, wait_until
from process_helpers import ANOMSTREAM, committed

from anomstream.stream import signals
from anomstream.stream.broker import free_port
from anomstream.stream.cli import main
from anomstream.stream.commands import run as run_command
from anomstream.stream.errors import (
    AnomstreamError,
    BrokerUnavailable,
    ConfigError,
    DeliveryError,
    TopicLayoutError,
)
from anomstream.stream.simulator import Simulator


def _wrapped(exc: BaseException) -> KafkaError:
    """What kafka-python 3 raises from `poll` when a rebalance callback raised `exc`."""
    try:
        raise KafkaError("User rebalance callback throws an error") from exc
    except KafkaError as wrapper:
        return wrapper


@pytest.mark.broker
def test_sigterm_finishes_the_batch_commits_and_exits_zero(kafka_broker: str, unique: str) -> None:
    config = service_config(kafka_broker, unique)
    topic = config.kafka.input_topics[0]
    sim = Simulator(machines=4, seed=2, fault_rate=0)
    sent = produce(kafka_broker, topic, ((r.machine_id.encode(), orjson.dumps(r.record)) for r in sim.readings(3000)))
    port = free_port()
    env = {**os.environ, "ANOMSTREAM_KAFKA__SESSION_TIMEOUT_MS": "6000", "ANOMSTREAM_KAFKA__TOPIC_PARTITIONS": "2"}
    process = subprocess.Popen(
        [*ANOMSTREAM, "run", "--bootstrap-servers", kafka_broker, "--input-topic", topic,
         "--alert-topic", config.kafka.alert_topic, "--dlq-topic", config.kafka.dlq_topic,
         "--group-id", config.kafka.group_id, "--metrics-port", str(port), "--metrics-host", "127.0.0.1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_until(lambda: committed(kafka_broker, config.kafka.group_id) >= sent, 60, what="all offsets committed")
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert "SIGTERM received" in output and "stopped cleanly" in output
    assert committed(kafka_broker, config.kafka.group_id) == sent


def test_bad_config_fails_fast_naming_the_key(tmp_path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[alerts]\nmin_run = -1\n")
    result = subprocess.run([*ANOMSTREAM, "run", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 78  # sysexits EX_CONFIG (was 2 before exit codes were distinct)
    assert "alerts.min_run" in result.stderr and "must be > 0" in result.stderr


def test_a_bad_command_line_exits_2() -> None:
    result = subprocess.run([*ANOMSTREAM, "run", "--no-such-flag"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "unrecognized arguments: --no-such-flag" in result.stderr


def test_no_broker_exits_69_with_one_line() -> None:
    # `simulate`: its producer gives up after 10 s (`run` waits 60 s for a broker at start).
    result = subprocess.run(
        [*ANOMSTREAM, "simulate", "--bootstrap-servers", f"127.0.0.1:{free_port()}", "--count", "10"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 69, result.stderr
    assert "no Kafka broker answered" in result.stderr and "Traceback" not in result.stderr


# In-process from here: the mapping from what ends a command to its exit code. A real process
# for each of these would need a broken install or a bug to provoke them.
@pytest.mark.parametrize(
    ("raised", "code"),
    [
        (ConfigError("kafka.group_id", "must not be empty"), 78),
        (TopicLayoutError("changelog topic 'x' has 2 partitions but ..."), 78),
        (BrokerUnavailable("no Kafka broker answered"), 69),
        (DeliveryError("3 of 3 messages not acknowledged"), 69),
        (KafkaConnectionError("connection refused"), 69),
        (KafkaTimeoutError("metadata not available"), 69),
        (_wrapped(TopicLayoutError("input partition 3 was assigned")), 78),  # from a rebalance callback
        (AnomstreamError("a deliberate error without a code of its own"), 1),
        (KeyboardInterrupt(), 130),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_exit_codes(monkeypatch, capsys, raised: BaseException, code: int) -> None:
    _command_raises(monkeypatch, raised)
    assert main(["run"]) == code
    err = capsys.readouterr().err
    if not isinstance(raised, KeyboardInterrupt):
        assert err.count("\n") == 1 and "Traceback" not in err, err
        deliberate = raised.__cause__ or raised
        if isinstance(deliberate, AnomstreamError):
            assert err == f"anomstream: {deliberate}\n"


def test_an_internal_error_is_one_line_on_stderr_and_the_traceback_in_the_log(monkeypatch, capsys, caplog) -> None:
    _command_raises(monkeypatch, ZeroDivisionError("division by zero"))
    with caplog.at_level(logging.CRITICAL, logger="anomstream"):
        assert main(["run"]) == 1
    assert capsys.readouterr().err == (
        "anomstream: internal error: ZeroDivisionError: division by zero (traceback in the log)\n"
    )
    (record,) = caplog.records
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError


def test_a_clean_return_is_0(monkeypatch) -> None:
    monkeypatch.setattr(signals, "install", lambda: None)
    monkeypatch.setattr(run_command, "run", lambda args: 0)
    assert main(["run"]) == 0


def _command_raises(monkeypatch, exc: BaseException) -> None:
    """`anomstream run` raising `exc`; no signal handlers installed in the test process."""

    def run(args: object) -> int:
        raise exc

    monkeypatch.setattr(signals, "install", lambda: None)
    monkeypatch.setattr(run_command, "run", run)


def test_help_lists_every_command() -> None:
    result = subprocess.run([*ANOMSTREAM, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("run", "demo", "simulate", "detectors", "config"):
        assert command in result.stdout
    # ... and the exit codes (one run of --help for both: it takes seconds on a loaded machine).
    codes = re.findall(r"^  (\d+) ", result.stdout.split("exit codes:")[1], re.MULTILINE)
    assert codes == ["0", "1", "2", "69", "78", "130"]


@pytest.mark.broker
def test_demo_runs_on_its_embedded_broker_and_prints_alerts() -> None:
    started = time.monotonic()
    result = subprocess.run(
        [*ANOMSTREAM, "demo", "--duration", "20", "--machines", "4", "--rate", "400",
         "--fault-rate", "4", "--metrics-port", "0"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "metrics http://127.0.0.1:" in out
    assert "FIRING" in out and "injected" in out
    assert "demo stopped:" in out
    assert time.monotonic() - started < 90
