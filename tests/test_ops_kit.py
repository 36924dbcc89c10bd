"""The operations kit, checked with the real tools: promtool, amtool, Alertmanager, the Compose
specification's JSON schema, and anomstream's own metric definitions.

Live checks against a running anomstream are in test_ops_live.py.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ops_helpers import (
    ALERTMANAGER_YML,
    COMPOSE_YML,
    CONFIG,
    DASHBOARD_JSON,
    PROMETHEUS_YML,
    REPO,
    RULE_TESTS_DIR,
    RULES_DIR,
    alerting_rules,
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

from anomstream.stream.app import new_registry
from anomstream.stream.cli import build_parser
from anomstream.stream.metrics import Metrics
from anomstream.stream.options import config_from_args
from anomstream.stream.telemetry import REASONS

COMPOSE_SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"
DATASOURCE_VARIABLE = {"type": "prometheus", "uid": "${datasource}"}
OPERATIONS_DOC = REPO / "docs" / "operations.md"
SEVERITIES = {"critical", "warning"}
COMPONENTS = {"anomstream", "machine"}


def _output(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


# ===================================================================== Prometheus: promtool
def test_promtool_check_config() -> None:
    promtool = require_tool("promtool")
    proc = run_tool([promtool, "check", "config", str(PROMETHEUS_YML)])
    assert proc.returncode == 0, _output(proc)
    # The config's rule_files glob must pick the rules up, not match nothing.
    assert re.search(r"SUCCESS: [1-9]\d* rule files found", proc.stdout + proc.stderr), _output(
        proc
    )


def test_promtool_check_rules() -> None:
    promtool = require_tool("promtool")
    files = sorted(RULES_DIR.glob("*.yml"))
    assert files
    proc = run_tool([promtool, "check", "rules", *map(str, files)])
    assert proc.returncode == 0, _output(proc)


def test_promtool_rule_unit_tests_pass() -> None:
    promtool = require_tool("promtool")
    files = sorted(RULE_TESTS_DIR.glob("*.yml"))
    assert files
    proc = run_tool([promtool, "test", "rules", *map(str, files)], cwd=RULE_TESTS_DIR)
    assert proc.returncode == 0, _output(proc)
    assert "SUCCESS" in proc.stdout, _output(proc)


def test_every_alerting_rule_has_firing_and_not_firing_unit_tests() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS_DIR.glob("*.yml"):
        for case in load_yaml(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alerting_rules()}
    assert names - fires == set(), "alerting rules with no firing test case"
    assert names - quiet == set(), "alerting rules with no not-firing test case"


def test_every_recording_rule_is_unit_tested_and_used_by_the_dashboard() -> None:
    tested = set()
    for path in RULE_TESTS_DIR.glob("*.yml"):
        for case in load_yaml(path)["tests"]:
            for check in case.get("promql_expr_test", []):
                if check.get("exp_samples"):
                    tested |= metric_names_in(check["expr"])
    used = set().union(*(metric_names_in(e) for e in dashboard_expressions()))
    assert recording_rule_names() - tested == set(), "recording rules without a promql_expr_test"
    assert recording_rule_names() - used == set(), "recording rules no dashboard panel uses"


def test_alerting_rules_follow_conventions() -> None:
    doc = OPERATIONS_DOC.read_text(encoding="utf-8")
    anchors = {_slug(h) for h in re.findall(r"^#+\s+(.+?)\s*$", doc, flags=re.MULTILINE)}
    rules = alerting_rules()
    assert len({r["alert"] for r in rules}) == len(rules), "duplicate alert names"
    for rule in rules:
        name = rule["alert"]
        assert rule.get("for"), f"{name}: no `for`"
        assert rule["labels"].get("severity") in SEVERITIES, name
        assert rule["labels"].get("component") in COMPONENTS, name
        annotations = rule["annotations"]
        for key in ("summary", "description", "runbook"):
            assert annotations.get(key, "").strip(), f"{name}: no {key} annotation"
        # The runbook hint points at the section of docs/operations.md about this alert.
        anchor = name.lower()
        assert f"docs/operations.md#{anchor}" in annotations["runbook"], name
        assert anchor in anchors, f"docs/operations.md has no section '{name}'"


def test_machine_alerts_carry_the_machine_label() -> None:
    for rule in alerting_rules():
        if rule["labels"]["component"] == "machine":
            assert "machine" in re.sub(r"\s+", " ", rule["expr"]).split("by (")[1].split(")")[0]


def _slug(heading: str) -> str:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


# ================================================================== Alertmanager: amtool & co
def test_amtool_check_config() -> None:
    amtool = require_tool("amtool")
    proc = run_tool([amtool, "check-config", str(ALERTMANAGER_YML)])
    assert proc.returncode == 0, _output(proc)


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (
            {"component": "machine", "severity": "critical", "machine": "press-07"},
            "maintenance-page",
        ),
        (
            {"component": "machine", "severity": "warning", "machine": "press-07"},
            "maintenance-ticket",
        ),
        ({"component": "anomstream", "severity": "critical"}, "oncall-page"),
        ({"component": "anomstream", "severity": "warning"}, "oncall-chat"),
        ({"alertname": "SomethingElse"}, "default"),
    ],
)
def test_alertmanager_routes_by_component_and_severity(
    labels: dict[str, str], receiver: str
) -> None:
    amtool = require_tool("amtool")
    proc = run_tool(
        [
            amtool,
            "config",
            "routes",
            "test",
            f"--config.file={ALERTMANAGER_YML}",
            f"--verify.receivers={receiver}",
            *(f"{k}={v}" for k, v in labels.items()),
        ]
    )
    assert proc.returncode == 0, _output(proc)


def test_every_alerting_rule_reaches_a_real_receiver() -> None:
    """No rule of ours may fall through to the catch-all `default` route."""
    amtool = require_tool("amtool")
    for rule in alerting_rules():
        labels = {"alertname": rule["alert"], **rule["labels"]}
        proc = run_tool(
            [
                amtool,
                "config",
                "routes",
                "test",
                f"--config.file={ALERTMANAGER_YML}",
                *(f"{k}={v}" for k, v in labels.items()),
            ]
        )
        assert proc.returncode == 0, _output(proc)
        assert proc.stdout.strip() not in ("", "default"), f"{rule['alert']} -> {proc.stdout}"


def test_alertmanager_groups_machine_alerts_by_machine() -> None:
    config = load_yaml(ALERTMANAGER_YML)
    assert "machine" in config["route"]["group_by"]
    machine_routes = [
        r for r in config["route"]["routes"] if 'component="machine"' in r.get("matchers", [])
    ]
    assert machine_routes and "machine" in machine_routes[0]["group_by"]
    assert any(r.get("webhook_configs") for r in config["receivers"])


@pytest.fixture
def alertmanager(tmp_path: Path) -> Any:
    """A real Alertmanager with the shipped config, on a free loopback port."""
    binary = require_tool("alertmanager")
    port = free_port()
    with open(tmp_path / "alertmanager.log", "wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={ALERTMANAGER_YML}",
                f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_json(f"{url}/api/v2/status"), 30, what="alertmanager")
        yield url
    finally:
        stop_process(proc)


def _post_alerts(url: str, alerts: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        f"{url}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 200


def test_alertmanager_inhibits_machine_alerts_of_a_down_instance(alertmanager: str) -> None:
    """AnomstreamDown on an instance mutes that instance's machine alerts, not other instances';
    a critical machine alert mutes the warning of the same machine."""

    def alert(**labels: str) -> dict[str, Any]:
        return {"labels": {"job": "anomstream", **labels}, "annotations": {"summary": "test"}}

    _post_alerts(
        alertmanager,
        [
            alert(
                alertname="AnomstreamDown",
                severity="critical",
                component="anomstream",
                instance="as-1:9464",
            ),
            alert(
                alertname="MachineAnomalyCritical",
                severity="critical",
                component="machine",
                instance="as-1:9464",
                machine="press-07",
            ),
            alert(
                alertname="AnomstreamConsumerLagGrowing",
                severity="warning",
                component="anomstream",
                instance="as-1:9464",
                topic="telemetry",
            ),
            alert(
                alertname="MachineAnomalyCritical",
                severity="critical",
                component="machine",
                instance="as-2:9464",
                machine="lathe-02",
            ),
            alert(
                alertname="MachineAnomalyWarning",
                severity="warning",
                component="machine",
                instance="as-2:9464",
                machine="lathe-02",
            ),
            alert(
                alertname="MachineAnomalyWarning",
                severity="warning",
                component="machine",
                instance="as-2:9464",
                machine="mill-03",
            ),
        ],
    )

    def states() -> dict[tuple[str, str], str] | None:
        got = http_json(f"{alertmanager}/api/v2/alerts")
        result = {
            (a["labels"]["alertname"], a["labels"].get("machine") or a["labels"]["instance"]): a[
                "status"
            ]["state"]
            for a in got
        }
        return result if len(result) == 6 else None

    expected = {
        ("AnomstreamDown", "as-1:9464"): "active",
        ("MachineAnomalyCritical", "press-07"): "suppressed",
        ("AnomstreamConsumerLagGrowing", "as-1:9464"): "suppressed",
        ("MachineAnomalyCritical", "lathe-02"): "active",
        ("MachineAnomalyWarning", "lathe-02"): "suppressed",
        ("MachineAnomalyWarning", "mill-03"): "active",
    }
    # Inhibition is applied as alerts are read; give the inhibitor a moment to see its sources.
    wait_until(lambda: states() == expected, 15, what=f"alert states {expected}")


def test_alertmanager_stale_checkpoint_inhibits_the_commit_stall_it_causes(
    alertmanager: str,
) -> None:
    """With state on, offsets are committed at checkpoints: AnomstreamCheckpointStale mutes
    AnomstreamOffsetCommitsStalled of the same instance only."""

    def alert(alertname: str, instance: str) -> dict[str, Any]:
        labels = {
            "job": "anomstream",
            "alertname": alertname,
            "severity": "warning",
            "component": "anomstream",
            "instance": instance,
        }
        return {"labels": labels, "annotations": {"summary": "test"}}

    _post_alerts(
        alertmanager,
        [
            alert("AnomstreamCheckpointStale", "as-1:9464"),
            alert("AnomstreamOffsetCommitsStalled", "as-1:9464"),
            alert("AnomstreamOffsetCommitsStalled", "as-2:9464"),
        ],
    )

    def states() -> dict[tuple[str, str], str] | None:
        got = http_json(f"{alertmanager}/api/v2/alerts")
        result = {
            (a["labels"]["alertname"], a["labels"]["instance"]): a["status"]["state"] for a in got
        }
        return result if len(result) == 3 else None

    expected = {
        ("AnomstreamCheckpointStale", "as-1:9464"): "active",
        ("AnomstreamOffsetCommitsStalled", "as-1:9464"): "suppressed",
        ("AnomstreamOffsetCommitsStalled", "as-2:9464"): "active",
    }
    wait_until(lambda: states() == expected, 15, what=f"alert states {expected}")


def test_example_webhook_receiver_logs_each_alert(tmp_path: Path) -> None:
    """config/alertmanager/alert_sink.py takes Alertmanager's webhook payload, one line per alert."""
    port = free_port()
    log_path = tmp_path / "alert-sink.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(CONFIG / "alertmanager" / "alert_sink.py"), str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        payload = {
            "version": "4",
            "status": "firing",
            "receiver": "maintenance-page",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {
                        "alertname": "MachineAnomalyCritical",
                        "severity": "critical",
                        "machine": "press-07",
                        "instance": "as-1:9464",
                    },
                    "annotations": {"summary": "Machine press-07: critical anomaly"},
                }
            ],
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/maintenance-page",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )

        def post() -> bool:
            with urllib.request.urlopen(request, timeout=5) as resp:
                return resp.status == 200

        wait_until(post, 20, what="alert sink answering")
        wait_until(lambda: "press-07" in log_path.read_text(), 10, what="alert logged")
    finally:
        stop_process(proc)
    line = log_path.read_text().strip().splitlines()[0]
    assert line == (
        "maintenance-page: firing MachineAnomalyCritical severity=critical machine=press-07 "
        "instance=as-1:9464: Machine press-07: critical anomaly"
    )


# =============================================================================== metric names
def _known_sample_names() -> set[str]:
    """What anomstream's /metrics can contain: its own Metrics plus prometheus_client's default
    collectors, built on a fresh registry exactly as the service builds them."""
    registry = new_registry()
    Metrics(registry)
    # `up` is written by Prometheus itself for every target.
    return exported_sample_names(registry.collect()) | {"up"}


def test_metric_name_extraction() -> None:
    assert metric_names_in(
        'histogram_quantile(0.99, sum by (le, job) (rate(a_bucket{x="y"}[5m]))) > 0.5'
    ) == {"a_bucket"}
    assert metric_names_in("time() - b unless on (instance) c offset 5m") == {"b", "c"}
    assert metric_names_in('label_values(d{instance=~"$instance"}, machine)') == {"d"}
    assert metric_names_in("sum(rate(e[$__rate_interval])) or vector(0)") == {"e"}


def test_rules_use_only_metrics_anomstream_exports() -> None:
    known = _known_sample_names() | recording_rule_names()
    used = set().union(*(metric_names_in(e) for e in rule_expressions()))
    assert used, "no metric names found in the rules"
    assert used - known == set()


def test_dashboard_uses_only_metrics_anomstream_exports() -> None:
    known = _known_sample_names() | recording_rule_names()
    used = set().union(*(metric_names_in(e) for e in dashboard_expressions()))
    assert used, "no metric names found in the dashboard"
    assert used - known == set()


def test_rules_and_dashboard_cover_the_main_metrics() -> None:
    used = set().union(*(metric_names_in(e) for e in rule_expressions() + dashboard_expressions()))
    for name in (
        "anomstream_readings_consumed_total",
        "anomstream_readings_rejected_total",
        "anomstream_end_to_end_latency_seconds_bucket",
        "anomstream_consumer_lag_records",
        "anomstream_alerts_firing",
        "anomstream_anomaly_score_bucket",
        "anomstream_active_models",
        "anomstream_ready",
        "anomstream_delivery_failures_total",
    ):
        assert name in used, name


# ================================================================================= Grafana
def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_JSON.read_text(encoding="utf-8"))


def test_dashboard_structure() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] and dashboard["title"]
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"datasource", "instance", "machine"} <= set(variables)
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (grid["x"] + dx, grid["y"] + dy) for dx in range(grid["w"]) for dy in range(grid["h"])
        }
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells
        if panel["type"] in ("row", "text"):
            continue
        assert panel.get("description"), f"panel {panel['title']!r} has no description"
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == DATASOURCE_VARIABLE, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE_VARIABLE, panel["title"]
            assert "$instance" in target["expr"], f"{panel['title']}: ignores $instance"
    for var in variables.values():
        if var["type"] == "query":
            assert var["datasource"] == DATASOURCE_VARIABLE, var["name"]


def _datasource_refs(node: Any) -> list[Any]:
    """Every `datasource` reference anywhere in the dashboard."""
    if isinstance(node, dict):
        refs = [node["datasource"]] if "datasource" in node else []
        return refs + [r for value in node.values() for r in _datasource_refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _datasource_refs(value)]
    return []


def test_dashboard_imports_into_any_grafana_and_keeps_the_provisioned_data_source() -> None:
    """The data source is the `datasource` variable everywhere (no fixed uid), `__inputs` asks
    the importer for a Prometheus (DS_PROMETHEUS, the variable's initial value) and
    `__requires` names what the dashboard needs. Provisioned, DS_PROMETHEUS stays unresolved
    (Grafana resolves `__inputs` only in its import dialog) and the variable falls back to the
    first Prometheus data source: the stack provisions exactly one."""
    dashboard = _dashboard()
    text = DASHBOARD_JSON.read_text(encoding="utf-8")
    provisioned = load_yaml(CONFIG / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    prometheus = [ds for ds in provisioned["datasources"] if ds["type"] == "prometheus"]
    assert len(prometheus) == 1 and prometheus[0]["isDefault"] is True
    assert prometheus[0]["uid"] not in text, "a fixed data source uid: the dashboard would not import"
    (ds_input,) = dashboard["__inputs"]
    assert ds_input == {**ds_input, "name": "DS_PROMETHEUS", "type": "datasource", "pluginId": "prometheus"}
    required = {(r["type"], r["id"]) for r in dashboard["__requires"]}
    assert {("grafana", "grafana"), ("datasource", "prometheus")} <= required
    panel_types = {p["type"] for p in dashboard["panels"] if p["type"] != "row"}
    assert panel_types <= {i for t, i in required if t == "panel"}, "panel types missing from __requires"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    ds_var = variables["datasource"]
    assert (ds_var["type"], ds_var["query"]) == ("datasource", "prometheus")
    assert ds_var["current"]["value"] == "${DS_PROMETHEUS}"
    assert text.count("${DS_PROMETHEUS}") == 2, "DS_PROMETHEUS only as the variable's initial value"
    refs = _datasource_refs(dashboard["panels"]) + _datasource_refs(dashboard["templating"])
    prometheus_refs = [r for r in refs if not (isinstance(r, dict) and r.get("type") == "grafana")]
    assert prometheus_refs and all(r == DATASOURCE_VARIABLE for r in prometheus_refs), prometheus_refs


# Issue 12's metrics, each of which must have a panel (not only a variable query).
OPERATIONS_METRICS = (
    "anomstream_alerts_total",
    "anomstream_alerts_open",
    "anomstream_alerts_suppressed_total",
    "anomstream_feedback_total",
    "anomstream_control_messages_total",
    "anomstream_machines_in_mode",
    "anomstream_machines_silent",
    "anomstream_model_age_readings_bucket",
    "anomstream_models_warming_up",
    "anomstream_sensor_score_bucket",
)


def test_every_operations_metric_has_a_panel() -> None:
    by_metric: dict[str, list[str]] = {}
    for panel in _dashboard()["panels"]:
        for target in panel.get("targets", []):
            for name in metric_names_in(target["expr"]):
                by_metric.setdefault(name, []).append(panel["title"])
    missing = [name for name in OPERATIONS_METRICS if name not in by_metric]
    assert not missing, f"metrics without a panel: {missing}"
    # And they are anomstream's: defined in stream/metrics.py, so the live test finds them too.
    assert set(OPERATIONS_METRICS) <= _known_sample_names()
    alerts_by_kind = [e for e in dashboard_expressions() if "anomstream_alerts_total" in e]
    assert any("by (kind" in e for e in alerts_by_kind), alerts_by_kind


def test_per_machine_alert_panels_show_the_kind_and_link_to_the_drilldown() -> None:
    """`anomstream_alerts_firing` has a `kind` label: a panel that keeps the machine keeps the
    kind too (or two kinds of one machine would merge), and links to `GET /machines/{id}` on
    the instance that holds the machine (the instance label is the service's HTTP address)."""
    per_machine = []
    for panel in _dashboard()["panels"]:
        for target in panel.get("targets", []):
            expr = re.sub(r"\s+", " ", target["expr"])
            if "anomstream_alerts_firing" not in expr:
                continue
            grouping = re.findall(r"\bby \(([^)]*)\)", expr)
            kept = {label.strip() for labels in grouping[:1] for label in labels.split(",")}
            if "machine" in kept and not expr.startswith("count("):
                assert {"instance", "kind"} <= kept, f"{panel['title']}: {expr}"
                per_machine.append(panel)
    assert len(per_machine) >= 2, "the open-alerts table and the firing timeline"
    for panel in per_machine:
        links = panel["fieldConfig"]["defaults"].get("links", [])
        assert links, f"{panel['title']}: no data link to the drill-down"
        url = links[0]["url"]
        assert re.fullmatch(
            r"http://\$\{__(field\.labels|data\.fields)\.instance\}/machines/"
            r"\$\{__(field\.labels|data\.fields)\.machine:percentencode\}",
            url,
        ), url
    machine_var = next(v for v in _dashboard()["templating"]["list"] if v["name"] == "machine")
    assert "anomstream_alerts_firing" in machine_var["query"]["query"]


def test_dashboard_has_the_required_panels() -> None:
    exprs = " ".join(dashboard_expressions())
    titles = {p["title"] for p in _dashboard()["panels"]}
    assert "anomstream_readings_consumed_total" in exprs  # throughput
    assert re.search(r"histogram_quantile\(0\.99, [^\n]*anomstream_end_to_end_latency", exprs)
    assert "anomstream_consumer_lag_records" in exprs
    assert "anomstream_alerts_firing" in exprs and any("machine" in t for t in titles)
    assert "anomstream_anomaly_score_bucket" in exprs
    assert "sum by (reason)" in exprs and "anomstream_readings_rejected_total" in exprs
    assert "anomstream_active_models" in exprs
    assert 'machine=~"$machine"' in exprs


def test_dead_letter_reasons_are_documented() -> None:
    """The dead-letter panel and the operations guide name every reason the decoder can give."""
    panel = next(p for p in _dashboard()["panels"] if p["title"] == "Dead-letter rate by reason")
    doc = OPERATIONS_DOC.read_text(encoding="utf-8")
    for reason in REASONS:
        assert f"{reason}," in panel["description"] or f"{reason})" in panel["description"], reason
        assert f"`{reason}`" in doc, reason


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses every dashboard query (Grafana variables replaced by plain values)."""
    promtool = require_tool("promtool")
    rules = []
    for i, expr in enumerate(dashboard_expressions()):
        if expr.startswith("label_values("):
            expr = metric_names_in(expr).pop()
        expr = (
            expr.replace("$__rate_interval", "1m")
            .replace("$instance", ".*")
            .replace("$machine", ".*")
        )
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = run_tool([promtool, "check", "rules", str(path)])
    assert proc.returncode == 0, _output(proc)


def test_grafana_provisioning_points_at_the_dashboards() -> None:
    provider = load_yaml(CONFIG / "grafana" / "provisioning" / "dashboards" / "anomstream.yml")
    path = provider["providers"][0]["options"]["path"]
    compose = load_yaml(COMPOSE_YML)
    mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["services"]["grafana"]["volumes"]}
    assert (REPO / mounts[path] / DASHBOARD_JSON.name).is_file()


# ========================================================================= docker-compose
def _compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_YML)


def test_compose_file_matches_the_compose_specification() -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(_compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_compose_schema_rejects_a_broken_file() -> None:
    """The schema is the real, strict one: a typo'd key does not pass."""
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    broken = _compose()
    broken["services"]["anomstream"]["helthcheck"] = broken["services"]["anomstream"]["healthcheck"]
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def _bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/")):
                mounts.append((source, target))
        elif volume.get("type") == "bind":
            mounts.append((volume["source"], volume["target"]))
    return mounts


def test_compose_config_mounts_exist_in_the_repo() -> None:
    compose = _compose()
    checked = 0
    for name, service in compose["services"].items():
        for source, _target in _bind_mounts(service):
            assert not source.startswith("/"), f"{name}: absolute host path {source}"
            assert (REPO / source).exists(), f"{name}: {source} does not exist in the repo"
            checked += 1
        build = service.get("build")
        if build:
            context = REPO / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = (
                "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            )
            assert (context / dockerfile).is_file(), name
    assert checked >= 5


def test_compose_services_read_their_config_from_mounted_files() -> None:
    """Every --config.file / --config path a service is started with lies inside a bind mount
    from config/ in the repo."""
    for name, service in _compose()["services"].items():
        command = service.get("command") or []
        if isinstance(command, str):
            command = command.split()
        paths = [a.split("=", 1)[1] for a in command if a.startswith("--config.file=")]
        paths += [command[i + 1] for i, a in enumerate(command[:-1]) if a == "--config"]
        for path in paths:
            sources = [
                (REPO / src, tgt)
                for src, tgt in _bind_mounts(service)
                if path == tgt or path.startswith(tgt.rstrip("/") + "/")
            ]
            assert sources, f"{name}: {path} is not mounted"
            source, target = sources[0]
            host_file = source / Path(path).relative_to(target) if path != target else source
            assert host_file.is_file(), f"{name}: {host_file}"
            assert str(host_file.resolve()).startswith(str(CONFIG)), f"{name}: {host_file}"


def test_compose_stack_has_every_component() -> None:
    services = _compose()["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    for name in ("kafka-init", "anomstream", "simulator", "prometheus", "alertmanager", "grafana"):
        assert name in services, name
    assert services["kafka-init"]["image"] == services["kafka"]["image"]
    init_script = " ".join(services["kafka-init"]["command"])
    for topic in ("telemetry", "anomstream.alerts", "anomstream.dlq", "anomstream.state"):
        assert f"--topic {topic} " in init_script, topic
    state_line = next(
        line for line in init_script.splitlines() if "--topic anomstream.state" in line
    )
    assert "cleanup.policy=compact" in state_line
    # The state changelog is partitioned like the telemetry it belongs to.
    partitions = dict(re.findall(r"--topic (\S+) --partitions (\d+)", init_script))
    assert partitions["anomstream.state"] == partitions["telemetry"]
    anomstream = services["anomstream"]
    assert anomstream["build"]["context"] == "."
    assert anomstream["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    assert "/healthz" in " ".join(anomstream["healthcheck"]["test"])
    assert services["simulator"]["command"][0] == "simulate"
    assert services["simulator"]["image"] == anomstream["image"]


_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|\$(?P<plain>[A-Za-z_]\w*)"
)


class _Unset(Exception):
    pass


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose-specification variable interpolation: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`,
    `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}`."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("plain")
        op, arg = match.group("op"), match.group("arg") or ""
        present = name in env
        usable = present and (env[name] != "" or not (op or "").startswith(":"))
        if op in (":-", "-"):
            return env[name] if usable else arg
        if op in (":?", "?"):
            if not usable:
                raise _Unset(f"{name}: {arg}")
            return env[name]
        if op in (":+", "+"):
            return arg if usable else ""
        return env.get(name, "")

    return _INTERPOLATION.sub(replace, value)


def _service_environment(service: dict[str, Any], env: dict[str, str]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {k: _interpolate(str(v), env) for k, v in environment.items() if v is not None}


# What an operator's .env holds for the stack.
_DOTENV = {"ANOMSTREAM_STATE__SIGNING_KEY": "0123456789abcdef" * 4}


def test_interpolation_follows_the_compose_specification() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert (
        _interpolate("$$SET ${SET} $SET ${NOPE:-d} ${EMPTY:-d} ${EMPTY-d}", env) == "$SET x x d d "
    )
    assert _interpolate("${SET:+alt}|${EMPTY:+alt}|${EMPTY+alt}", env) == "alt||alt"
    with pytest.raises(_Unset):
        _interpolate("${EMPTY:?required}", env)
    assert _interpolate("${EMPTY?required}", env) == ""


def test_compose_commands_are_valid_anomstream_invocations(monkeypatch: pytest.MonkeyPatch) -> None:
    """anomstream's own parser and config loader accept what the stack runs: the commands, the
    mounted config file and the ANOMSTREAM_* environment, interpolated from an operator's .env."""
    services = _compose()["services"]
    parser = build_parser()
    configs = {}
    for name in ("anomstream", "simulator"):
        service = services[name]
        args = parser.parse_args([str(a) for a in service["command"]])
        assert callable(args.func), name
        if getattr(args, "config", None):  # the container path, read from its host file
            mounts = {target: source for source, target in _bind_mounts(service)}
            args.config = str(REPO / mounts[args.config])
        for key in [k for k in os.environ if k.startswith("ANOMSTREAM_")]:
            monkeypatch.delenv(key)
        for key, value in _service_environment(service, _DOTENV).items():
            monkeypatch.setenv(key, value)
        config = config_from_args(args)
        assert config.kafka.bootstrap_servers == "kafka:19092", name
        configs[name] = config
    run_args = parser.parse_args([str(a) for a in services["anomstream"]["command"]])
    assert run_args.command == "run" and run_args.metrics_port == 9464
    # The service keeps state and signs it with the key from .env; no rotation in progress.
    state = configs["anomstream"].state
    assert state.enabled
    assert state.signing_key.get_secret_value() == _DOTENV["ANOMSTREAM_STATE__SIGNING_KEY"]
    assert state.previous_signing_keys == ()
    # The topic the stack creates for the changelog is the one anomstream uses.
    init_script = " ".join(services["kafka-init"]["command"])
    assert f"--topic {state.changelog_topic} " in init_script
    assert f"--topic {configs['anomstream'].kafka.input_topics[0]} " in init_script


def test_compose_requires_a_signing_key_and_ships_none() -> None:
    """Every service that runs `anomstream run` takes its signing key from .env / the shell, with
    no default (a published default key is no secret): without one, Compose refuses to start."""
    runners = {
        name: service
        for name, service in _compose()["services"].items()
        if service.get("image") == _compose()["services"]["anomstream"]["image"]
        and str((service.get("command") or ["run"])[0]) == "run"
    }
    assert "anomstream" in runners
    for name, service in runners.items():
        raw = str((service.get("environment") or {}).get("ANOMSTREAM_STATE__SIGNING_KEY", ""))
        assert re.fullmatch(r"\$\{ANOMSTREAM_STATE__SIGNING_KEY:\?[^}]+\}", raw), name
        with pytest.raises(_Unset):
            _service_environment(service, {})
        rotating = {**_DOTENV, "ANOMSTREAM_STATE__PREVIOUS_SIGNING_KEYS": "old-key-0123456789"}
        env = _service_environment(service, rotating)
        assert (
            env["ANOMSTREAM_STATE__PREVIOUS_SIGNING_KEYS"]
            == rotating["ANOMSTREAM_STATE__PREVIOUS_SIGNING_KEYS"]
        ), name
    # Services that do not keep state get no key at all.
    for name, service in _compose()["services"].items():
        if name not in runners:
            assert "ANOMSTREAM_STATE__SIGNING_KEY" not in (service.get("environment") or {}), name


def test_compose_kafka_is_a_single_node_kraft_cluster() -> None:
    services = _compose()["services"]
    env = {k: str(v) for k, v in services["kafka"]["environment"].items()}
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] not in advertised
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    assert set(listeners) <= set(protocols) and set(advertised) <= set(listeners)
    node, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split("@")
    assert node == env["KAFKA_NODE_ID"]
    assert voter.split(":")[1] == listeners[env["KAFKA_CONTROLLER_LISTENER_NAMES"]].rsplit(":")[-1]
    # kafka-storage.sh format wants a base64url-encoded UUID (16 bytes).
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    # Containers reach the broker on the advertised in-network listener.
    internal = advertised[env["KAFKA_INTER_BROKER_LISTENER_NAME"]]
    for name in ("anomstream", "simulator"):
        command = services[name]["command"]
        assert command[command.index("--bootstrap-servers") + 1] == internal, name
    assert "--bootstrap-server " + internal in " ".join(services["kafka-init"]["command"])


def test_compose_prometheus_scrapes_the_anomstream_service() -> None:
    services = _compose()["services"]
    prometheus = load_yaml(PROMETHEUS_YML)
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "anomstream")
    target = job["static_configs"][0]["targets"][0]
    host, port = target.split(":")
    assert host == "anomstream" and host in services
    command = services["anomstream"]["command"]
    assert command[command.index("--metrics-port") + 1] == port
    assert f"{port}:{port}" in services["anomstream"]["ports"]
    am_target = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0]
    assert am_target.split(":")[0] in services


# ================================================================================ Dockerfile
def test_dockerfile_runs_as_non_root_and_exposes_metrics() -> None:
    # Logical instructions: comments dropped, backslash continuations joined.
    text = "\n".join(
        line
        for line in (REPO / "Dockerfile").read_text().splitlines()
        if not line.lstrip().startswith("#")
    )
    lines = [
        " ".join(line.split()) for line in text.replace("\\\n", " ").splitlines() if line.strip()
    ]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert froms and all(line.split()[1] == "python:3.11-slim" for line in froms)
    final_stage = lines[lines.index(froms[-1]) :]
    users = [line.split()[1] for line in final_stage if line.startswith("USER ")]
    assert users, "the runtime stage never leaves root"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert "EXPOSE 9464" in final_stage
    assert any("pip install" in line for line in final_stage)
    assert any(line.startswith("HEALTHCHECK") and "/healthz" in line for line in final_stage)


# The build context and the wheel the image installs: tests/test_packaging.py.
