"""The `anomstream` command as a user runs it: real processes, real signals, real broker."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import orjson
import pytest
from kafka_helpers import produce, service_config, wait_until
from process_helpers import ANOMSTREAM, committed

from anomstream.stream.broker import free_port
from anomstream.stream.simulator import Simulator


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
    assert result.returncode == 2
    assert "alerts.min_run" in result.stderr and "must be > 0" in result.stderr


def test_help_lists_every_command() -> None:
    result = subprocess.run([*ANOMSTREAM, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("run", "demo", "simulate", "detectors", "config"):
        assert command in result.stdout


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
