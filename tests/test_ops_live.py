"""The operations kit against a live anomstream: `anomstream run` as a subprocess on the embedded
broker, fed by `anomstream simulate` (plus a few malformed records), linted with `promtool check
metrics`, and scraped by a real Prometheus server that loads the shipped rules."""

from __future__ import annotations

import math
import os
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from anomstream.stream.telemetry import REASONS
from kafka_helpers import FAST_GROUP, produce
from ops_helpers import (
    PROMETHEUS_YML,
    RULES_DIR,
    dashboard_expressions,
    exported_sample_names,
    free_port,
    http_json,
    load_yaml,
    metric_names_in,
    recording_rule_names,
    require_tool,
    rule_expressions,
    run_tool,
    stop_process,
    wait_until,
)
from process_helpers import ANOMSTREAM
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.broker

SIMULATED = 3000
# Records no detector may see: each must land in the dead-letter topic under its reason.
MALFORMED = [
    (b"press-01", b"this is not json"),
    (b"press-01", b'{"machine_id": "press-01", "sensors": '),
    (b"press-02", b"[1, 2, 3]"),
    (b"press-02", b'{"machine_id": "press-02", "sensors": {"temp_c": 70.1}}'),
    (b"press-03", b'{"machine_id": "press-03", "ts": 1795000000, "sensors": {"temp_c": "hot"}}'),
]
SENT = SIMULATED + len(MALFORMED)


def _anomstream_command() -> list[str]:
    """The installed console script next to this interpreter."""
    return list(ANOMSTREAM)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@dataclass
class LiveService:
    url: str
    port: int
    topic: str
    log: Path
    proc: subprocess.Popen[bytes]

    def metrics_text(self) -> str:
        status, body = _get(f"{self.url}/metrics")
        assert status == 200, body
        return body

    def sample(self, name: str, **labels: str) -> float:
        total = 0.0
        for family in text_string_to_metric_families(self.metrics_text()):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    total += s.value
        return total


@pytest.fixture(scope="module")
def live_service(
    kafka_broker: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveService]:
    """`anomstream run` on its own topics and group, after it has consumed SENT records."""
    tmp = tmp_path_factory.mktemp("ops-live")
    unique = os.urandom(5).hex()
    topic = f"telemetry-ops-{unique}"
    port = free_port()
    env = {
        **os.environ,
        "ANOMSTREAM_KAFKA__SESSION_TIMEOUT_MS": str(FAST_GROUP["kafka.session_timeout_ms"]),
        "ANOMSTREAM_KAFKA__HEARTBEAT_INTERVAL_MS": str(FAST_GROUP["kafka.heartbeat_interval_ms"]),
        "ANOMSTREAM_KAFKA__TOPIC_PARTITIONS": "2",
        "ANOMSTREAM_SERVICE__INSTANCE": f"ops-live-{unique}",
    }
    log = tmp / "anomstream-run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                *_anomstream_command(),
                "run",
                "--bootstrap-servers",
                kafka_broker,
                "--metrics-host",
                "127.0.0.1",
                "--metrics-port",
                str(port),
                "--input-topic",
                topic,
                "--alert-topic",
                f"alerts-ops-{unique}",
                "--dlq-topic",
                f"dlq-ops-{unique}",
                "--group-id",
                f"group-ops-{unique}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    service = LiveService(f"http://127.0.0.1:{port}", port, topic, log, proc)
    try:

        def ready() -> bool:
            assert proc.poll() is None, f"anomstream run exited {proc.returncode}:\n{_tail(log)}"
            return _get(f"{service.url}/readyz", timeout=2)[0] == 200

        wait_until(ready, 90, what="anomstream /readyz")
        sim_log = tmp / "anomstream-simulate.log"
        with open(sim_log, "wb") as out:
            sim = subprocess.run(
                [
                    *_anomstream_command(),
                    "simulate",
                    "--bootstrap-servers",
                    kafka_broker,
                    "--topic",
                    topic,
                    "--count",
                    str(SIMULATED),
                    "--rate",
                    "0",
                    "--machines",
                    "5",
                    "--seed",
                    "11",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=180,
                env=env,
                check=False,
            )
        assert sim.returncode == 0, (
            f"anomstream simulate exited {sim.returncode}:\n{_tail(sim_log)}"
        )
        produce(kafka_broker, topic, MALFORMED)
        wait_until(
            lambda: service.sample("anomstream_readings_consumed_total", topic=topic) >= SENT,
            120,
            what=f"{SENT} records consumed",
        )
        yield service
    finally:
        stop_process(proc)
    assert proc.returncode == 0, f"anomstream run exited {proc.returncode}:\n{_tail(log)}"


# ======================================================================= (a) promtool lint
def test_promtool_check_metrics_on_live_exposition(live_service: LiveService) -> None:
    promtool = require_tool("promtool")
    exposition = live_service.metrics_text()
    assert "anomstream_readings_consumed_total" in exposition
    proc = run_tool([promtool, "check", "metrics"], input=exposition)
    problems = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 0 and not problems, f"promtool check metrics:\n{problems}"


def test_live_counts_match_what_was_sent(live_service: LiveService) -> None:
    assert (
        live_service.sample("anomstream_readings_consumed_total", topic=live_service.topic) == SENT
    )
    assert live_service.sample("anomstream_readings_rejected_total") == len(MALFORMED)
    assert live_service.sample("anomstream_readings_rejected_total", reason="bad_json") >= 2
    reasons = {
        s.labels["reason"]
        for family in text_string_to_metric_families(live_service.metrics_text())
        for s in family.samples
        if s.name == "anomstream_readings_rejected_total"
    }
    assert reasons <= set(REASONS), "a reason the dashboard and docs do not know"


# ================================================================= (c) names in the exposition
def test_every_metric_in_rules_and_dashboard_is_in_the_live_exposition(
    live_service: LiveService,
) -> None:
    families = list(text_string_to_metric_families(live_service.metrics_text()))
    exported = exported_sample_names(families) | {"up"} | recording_rule_names()
    used = set().union(*(metric_names_in(e) for e in rule_expressions() + dashboard_expressions()))
    assert used - exported == set(), "used by rules/dashboard but not exported by anomstream"


# ========================================================== (b) a real Prometheus scrapes it
@dataclass
class LivePrometheus:
    url: str
    log: Path

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        body = http_json(url)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None


@pytest.fixture(scope="module")
def live_prometheus(
    live_service: LiveService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LivePrometheus]:
    """Prometheus on loopback, configured from the shipped prometheus.yml: its anomstream job
    pointed at the live service, 1 s scrape and rule evaluation, the shipped rules loaded."""
    binary = require_tool("prometheus")
    tmp = tmp_path_factory.mktemp("prometheus")
    shipped = load_yaml(PROMETHEUS_YML)
    job = next(j for j in shipped["scrape_configs"] if j["job_name"] == "anomstream")
    job["scrape_interval"] = "1s"
    job["static_configs"] = [{"targets": [f"127.0.0.1:{live_service.port}"]}]
    config = {
        "global": {**shipped["global"], "scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES_DIR / "*.yml")],
        "scrape_configs": [job],  # no Alertmanager, no other jobs: nothing else is running
    }
    config_path = tmp / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    log = tmp / "prometheus.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
    server = LivePrometheus(f"http://127.0.0.1:{port}", log)
    try:

        def up() -> bool:
            assert proc.poll() is None, f"prometheus exited {proc.returncode}:\n{_tail(log)}"
            return server.value('up{job="anomstream"}') == 1

        wait_until(up, 60, interval=0.5, what="Prometheus scraping anomstream")
        # A few scrapes, so that rate() over the dashboard's 1m windows has two points or more.
        wait_until(
            lambda: (server.value('count_over_time(up{job="anomstream"}[1m])') or 0) >= 3,
            30,
            interval=0.5,
            what="three scrapes",
        )
        yield server
    finally:
        stop_process(proc)


def test_prometheus_sees_anomstream_series_with_sensible_values(
    live_service: LiveService, live_prometheus: LivePrometheus
) -> None:
    prom = live_prometheus
    topic = live_service.topic
    consumed = wait_until(
        lambda: prom.value(f'anomstream_readings_consumed_total{{topic="{topic}"}}') == SENT,
        30,
        what=f"Prometheus to see {SENT} records consumed",
    )
    assert consumed
    assert prom.value('sum(anomstream_readings_rejected_total{job="anomstream"})') == len(MALFORMED)
    assert prom.value('anomstream_ready{job="anomstream"}') == 1
    assert (prom.value('anomstream_partitions_assigned{job="anomstream"}') or 0) >= 1
    # 5 simulated machines, several sensors each: one model per machine+sensor.
    assert (prom.value('anomstream_active_models{job="anomstream"}') or 0) >= 5
    scored = prom.value('anomstream_readings_scored_total{job="anomstream"}')
    assert scored is not None and scored > 0
    # Every valid reading passed through the end-to-end latency histogram; latencies are sane.
    count = prom.value('anomstream_end_to_end_latency_seconds_count{job="anomstream"}')
    assert count is not None and count >= SIMULATED * 0.9
    mean = prom.value(
        'anomstream_end_to_end_latency_seconds_sum{job="anomstream"}'
        ' / anomstream_end_to_end_latency_seconds_count{job="anomstream"}'
    )
    assert mean is not None and 0 <= mean < 120
    # Lag drains to zero once everything is consumed and committed.
    wait_until(
        lambda: prom.value(f'sum(anomstream_consumer_lag_records{{topic="{topic}"}})') == 0,
        30,
        what="consumer lag 0",
    )
    # State is on by default (signed with the key tests/conftest.py provides): the start-up
    # assignment restored from the changelog, and checkpoints came with the commits.
    assert (prom.value('anomstream_restore_duration_seconds_count{job="anomstream"}') or 0) >= 1
    assert (prom.value('anomstream_checkpoints_total{job="anomstream"}') or 0) >= 1
    assert (prom.value('anomstream_checkpoint_records_total{job="anomstream"}') or 0) >= 5
    assert (prom.value('anomstream_checkpoint_bytes_total{job="anomstream"}') or 0) > 0
    assert prom.value('anomstream_state_rejected_total{job="anomstream"}') == 0
    assert prom.value('anomstream_restoring{job="anomstream"}') == 0
    # The dashboard's checkpoint age: seconds, not "since 1970".
    age = prom.value('time() - anomstream_last_checkpoint_timestamp_seconds{job="anomstream"}')
    assert age is not None and 0 <= age < 300, age
    info = prom.query('anomstream_build_info{job="anomstream"}')
    assert info and info[0]["metric"]["version"]
    assert (prom.value('process_resident_memory_bytes{job="anomstream"}') or 0) > 0


def test_prometheus_evaluates_every_shipped_rule_without_errors(
    live_service: LiveService, live_prometheus: LivePrometheus
) -> None:
    def evaluated() -> list[dict[str, Any]] | None:
        groups = http_json(f"{live_prometheus.url}/api/v1/rules")["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        # health stays "unknown" until a rule's first evaluation.
        return rules if rules and all(rule["health"] != "unknown" for rule in rules) else None

    rules = wait_until(evaluated, 30, interval=0.5, what="every rule evaluated")
    shipped = len(rule_expressions())
    assert len(rules) == shipped
    bad = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"}
    assert not bad, f"rules failing on live data: {bad}"
    # The recording rules produce series from the live data (once two scrapes make a rate).
    wait_until(
        lambda: (
            live_prometheus.value('instance:anomstream_readings_consumed:rate1m{job="anomstream"}')
            is not None
        ),
        30,
        interval=0.5,
        what="recording rule output",
    )
    # A healthy, caught-up service fires no service alert.
    firing = [
        a
        for a in http_json(f"{live_prometheus.url}/api/v1/alerts")["data"]["alerts"]
        if a["labels"].get("component") == "anomstream"
    ]
    assert not firing, firing


def test_every_dashboard_query_runs_on_prometheus(
    live_service: LiveService, live_prometheus: LivePrometheus
) -> None:
    empty = []
    for expr in dashboard_expressions():
        if expr.startswith("label_values("):
            expr = metric_names_in(expr).pop()
        query = (
            expr.replace("$__rate_interval", "1m")
            .replace("$instance", ".*")
            .replace("$machine", ".*")
        )
        result = live_prometheus.query(query)  # asserts status == success
        values = [float(r["value"][1]) for r in result]
        if not values:
            empty.append(expr)
        assert not any(math.isinf(v) for v in values), expr
    # Queries over series that only exist after a fault, a delivery failure or an eviction may be
    # empty; the core panels may not.
    core = [
        e
        for e in empty
        if any(
            name in e
            for name in (
                "readings_consumed",
                "end_to_end_latency",
                "consumer_lag",
                "active_models",
                "anomstream_ready",
                "build_info",
                "anomaly_score",
                # the model census (counted at scrape time) and the per-sensor scores
                "model_age_readings",
                "models_warming_up",
                "sensor_score",
            )
        )
    ]
    assert not core, f"dashboard queries with no data on a live service: {core}"
