"""Helpers of the operations-kit tests: repo paths, the Prometheus/Alertmanager tools, and the
metric names that rules and dashboard use versus the names anomstream exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka_helpers import wait_until

from anomstream.stream.broker import free_port

__all__ = [
    "ALERTMANAGER_YML",
    "COMPOSE_YML",
    "CONFIG",
    "DASHBOARD_JSON",
    "PROMETHEUS_YML",
    "REPO",
    "RULES_DIR",
    "RULE_TESTS_DIR",
    "alerting_rules",
    "dashboard_expressions",
    "exported_sample_names",
    "free_port",
    "http_json",
    "load_yaml",
    "metric_names_in",
    "recording_rule_names",
    "require_tool",
    "rule_expressions",
    "rule_groups",
    "run_tool",
    "sample_names_of",
    "stop_process",
    "wait_until",
]

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config"
RULES_DIR = CONFIG / "prometheus" / "rules"
RULE_TESTS_DIR = CONFIG / "prometheus" / "tests"
PROMETHEUS_YML = CONFIG / "prometheus" / "prometheus.yml"
ALERTMANAGER_YML = CONFIG / "alertmanager" / "alertmanager.yml"
DASHBOARD_JSON = CONFIG / "grafana" / "dashboards" / "anomstream.json"
COMPOSE_YML = REPO / "docker-compose.yml"

# Debian installs Alertmanager's server as prometheus-alertmanager; upstream calls it alertmanager.
_TOOL_ALTERNATIVES = {"alertmanager": ("alertmanager", "prometheus-alertmanager")}


def require_tool(name: str) -> str:
    """Path of a binary the test needs; missing, the test fails (`./dev test` installs them)."""
    for candidate in _TOOL_ALTERNATIVES.get(name, (name,)):
        path = shutil.which(candidate)
        if path:
            return path
    message = (
        f"`{name}` is not installed; `./dev test` installs the Debian packages prometheus and "
        "prometheus-alertmanager"
    )
    pytest.fail(message)


def run_tool(
    args: list[str], *, cwd: Path | None = None, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a tool; the caller asserts on returncode and gets stdout+stderr in the message."""
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, input=input, check=False
    )


def load_yaml(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


# ------------------------------------------------------------------------------------ rules
def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        groups.extend(load_yaml(path)["groups"])
    return groups


def alerting_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def recording_rule_names() -> set[str]:
    return {
        rule["record"] for group in rule_groups() for rule in group["rules"] if "record" in rule
    }


def rule_expressions() -> list[str]:
    return [str(rule["expr"]) for group in rule_groups() for rule in group["rules"]]


# -------------------------------------------------------------------------------- dashboard
def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def dashboard_expressions(dashboard: dict[str, Any] | None = None) -> list[str]:
    """Every PromQL query of the dashboard: panel targets and template-variable queries."""
    if dashboard is None:
        dashboard = json.loads(DASHBOARD_JSON.read_text(encoding="utf-8"))
    exprs = [node["expr"] for node in _walk(dashboard.get("panels", [])) if "expr" in node]
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var.get("query")
        exprs.append(query["query"] if isinstance(query, dict) else str(query))
    return exprs


# ----------------------------------------------------------------------- metric name checks
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
    "atan2",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_LABEL_VALUES = re.compile(r"label_values\s*\(\s*([^,()]+?)\s*,\s*[A-Za-z_]\w*\s*\)")
_IDENT = re.compile(r"(?<![\w:.$])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:])(?!\s*\()")


def metric_names_in(expr: str) -> set[str]:
    """Metric names a PromQL query (or Grafana `label_values(metric, label)`) reads.

    Not a full PromQL parser: it removes strings, label matchers, range/offset brackets and
    grouping clauses, then keeps the identifiers that are neither functions nor keywords.
    """
    # label_values(series, label): only `series` is PromQL; the label is not a metric.
    expr = _LABEL_VALUES.sub(lambda m: m.group(1), expr)
    expr = _STRING.sub('""', expr)
    expr = _MATCHERS.sub(" ", expr)
    expr = _RANGES.sub(" ", expr)
    expr = _GROUPING.sub(" ", expr)
    expr = re.sub(r"\$\{?\w+\}?", " ", expr)  # Grafana variables outside brackets
    names = set()
    for match in _IDENT.finditer(expr):
        name = match.group(1)
        if name.lower() in _KEYWORDS or re.fullmatch(r"\d.*", name):
            continue
        names.add(name)
    return names


def sample_names_of(family_name: str, family_type: str) -> set[str]:
    """Series names a metric family exposes, by its type (text-format conventions)."""
    if family_type == "counter":
        return {family_name + "_total", family_name + "_created"}
    if family_type in ("histogram", "gaugehistogram"):
        return {family_name + s for s in ("_bucket", "_count", "_sum", "_created")}
    if family_type == "summary":
        return {family_name} | {family_name + s for s in ("_count", "_sum", "_created")}
    if family_type == "info":
        return {family_name + "_info"}
    return {family_name}


def exported_sample_names(families: Iterable[Any]) -> set[str]:
    """Every series name the given families may expose, also for families with no series yet
    (a labelled counter has no series until its first label set is used)."""
    names: set[str] = set()
    for family in families:
        names |= sample_names_of(family.name, family.type)
        names |= {sample.name for sample in family.samples}
    return names


# ---------------------------------------------------------------------------- live helpers
def http_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read().decode())


def stop_process(proc: subprocess.Popen[Any], timeout: float = 20.0) -> None:
    """SIGTERM, wait, then SIGKILL: never leave a child behind."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
