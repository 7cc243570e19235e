"""The chart's Grafana dashboard and PrometheusRule: rendered behind values, every query and
rule checked by Prometheus's own parsers (scripts/rulecheck.py builds the checker from the
pinned Prometheus release), and every metric they use one that Remit really exports."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from remit.audit.health import SinkHealth
from remit.gateway.metrics import BundleTimes, Metrics
from remit_operator.metrics import OperatorMetrics
from tests.helm.chart import ROOT, find, manifests
from tests.helm.values import OBSERVED

sys.path.insert(0, str(ROOT / "scripts"))
import rulecheck

METRIC = re.compile(r"\bremit_[a-z_]+")
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


@pytest.fixture(scope="module")
def checker() -> Path:
    binary = rulecheck.binary()
    if not os.access(binary, os.X_OK):
        if os.environ.get("REMIT_REQUIRE_RULECHECK"):
            pytest.fail(f"the rule checker is required but missing: run make rulecheck ({binary})")
        pytest.skip("no rule checker built (make rulecheck); the structure was still checked")
    return binary


def _dashboard() -> dict[str, Any]:
    config = find(manifests(OBSERVED), "ConfigMap", "remit-dashboard")
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config["metadata"]["annotations"] == {"grafana_folder": "Remit"}
    dashboard: dict[str, Any] = json.loads(config["data"]["remit.json"])
    return dashboard


def _rules() -> dict[str, Any]:
    rule = find(manifests(OBSERVED), "PrometheusRule", "remit")
    assert rule["metadata"]["labels"]["release"] == "prom"
    spec: dict[str, Any] = rule["spec"]
    return spec


def _exported() -> set[str]:
    """Every metric name the gateway and the operator expose (with a bundle and a sink)."""
    metrics = Metrics()
    metrics.watch_audit(lambda: SinkHealth("ok", "", 0, 0, 0))
    metrics.watch_bundle(lambda: BundleTimes(0.0, 1.0, 2.0))
    names = set()
    for registry in (metrics.registry, OperatorMetrics().registry):
        for family in registry.collect():
            names.add(family.name)
            if family.type == "counter":  # labelled counters have no sample until counted
                names.add(family.name + "_total")
            names.update(sample.name for sample in family.samples)
    return names


def _exprs() -> list[str]:
    panels = _dashboard()["panels"]
    queries = [target["expr"] for panel in panels for target in panel["targets"]]
    rules = [r["expr"] for group in _rules()["groups"] for r in group["rules"]]
    return queries + rules


def test_nothing_is_rendered_unless_asked() -> None:
    default = manifests({})
    assert not [o for o in default if o["kind"] == "PrometheusRule"]
    assert not [o for o in default if o["metadata"]["name"].endswith("-dashboard")]


def test_the_dashboard_is_well_formed() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "remit-overview"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "server"} <= variables


def test_the_alerts_cover_what_security_teams_are_paged_for() -> None:
    names = {r["alert"] for group in _rules()["groups"] for r in group["rules"]}
    assert {
        "RemitDenialSpike",
        "RemitAuditUnavailable",
        "RemitSidecarsOutOfSync",
        "RemitBundlePushFailures",
        "RemitGrantExpiringSoon",
    } <= names


def test_every_metric_queried_is_one_remit_exports() -> None:
    exported = _exported()
    used = {name for expr in _exprs() for name in METRIC.findall(expr)}
    missing = sorted(n for n in used if n not in exported)
    assert not missing, missing
    assert "remit_call_decisions_total" in used


def test_the_rules_pass_prometheus_rule_checking(checker: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": _rules()["groups"]}))
    done = subprocess.run(
        [str(checker), "rules", str(rules)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok: 8 checked" in done.stdout


def test_every_dashboard_query_parses_as_promql(checker: Path) -> None:
    queries = [expr.replace("$__rate_interval", "5m").replace("$server", ".*") for expr in _exprs()]
    done = subprocess.run(
        [str(checker), "exprs"], input=json.dumps(queries), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_checker_rejects_a_broken_rule(checker: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    broken = {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "sum(rate(x[5m])"}]}]}
    rules.write_text(yaml.safe_dump(broken))
    done = subprocess.run(
        [str(checker), "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "unclosed" in done.stdout or "parse error" in done.stdout


def test_tracing_reaches_the_operator() -> None:
    deployment = find(manifests(OBSERVED), "Deployment")
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["REMIT_GATEWAY_OTLP_ENDPOINT"] == "http://otel-collector.observability:4318"
