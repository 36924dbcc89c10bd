"""`anomstream run` as a child process: start, scrape, SIGKILL, SIGTERM — no orphans."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from anomstream.stream.broker import free_port
from anomstream.stream.config import Config
from kafka import KafkaAdminClient

# The console script that the install put next to this interpreter: what a user runs.
_SCRIPT = Path(sys.executable).with_name("anomstream")
assert _SCRIPT.exists(), f"no installed `anomstream` command beside {sys.executable}: install the package"
ANOMSTREAM = [str(_SCRIPT)]


class ServiceProcess:
    """One `anomstream run` process for `config`'s topics and group; `extra_env` on top."""

    def __init__(self, config: Config, **extra_env: str) -> None:
        self.config = config
        self.port = free_port()
        k = config.kafka
        self.args = [
            *ANOMSTREAM, "run", "--bootstrap-servers", k.bootstrap_servers,
            *[a for t in k.input_topics for a in ("--input-topic", t)],
            "--alert-topic", k.alert_topic, "--dlq-topic", k.dlq_topic, "--group-id", k.group_id,
            "--metrics-port", str(self.port), "--metrics-host", "127.0.0.1",
        ]
        self.env = {
            **os.environ,
            "ANOMSTREAM_KAFKA__SESSION_TIMEOUT_MS": str(k.session_timeout_ms),
            "ANOMSTREAM_KAFKA__HEARTBEAT_INTERVAL_MS": str(k.heartbeat_interval_ms),
            "ANOMSTREAM_KAFKA__TOPIC_PARTITIONS": str(k.topic_partitions),
            "ANOMSTREAM_STATE__CHANGELOG_TOPIC": config.state.changelog_topic,
            "ANOMSTREAM_STATE__SIGNING_KEY": config.state.signing_key.get_secret_value(),
            "ANOMSTREAM_DETECTOR__NAME": config.detector.name,
            **extra_env,
        }
        self.log = tempfile.TemporaryFile()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        self.process = subprocess.Popen(self.args, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no checkpoint, no commit, no goodbye."""
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait: the clean path."""
        assert self.process is not None
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
                raise
        return self.process.returncode

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def metrics(self) -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as resp:
                return resp.read().decode()
        except OSError:
            return ""

    def sample(self, name: str, default: float = 0.0) -> float:
        match = re.search(rf"^{re.escape(name)} (\S+)$", self.metrics(), re.MULTILINE)
        return float(match.group(1)) if match else default

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
        self.log.close()


def committed(bootstrap: str, group: str) -> int:
    """Sum of the group's committed offsets (records whose processing is committed)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
        return sum(meta.offset for meta in offsets.values() if meta.offset > 0)
    finally:
        admin.close()
