"""The audit sink's health in the gateway's metrics, read at scrape time."""

from __future__ import annotations

from remit.audit import SinkHealth
from remit.gateway.metrics import Metrics
from remit.policy.decision import Reason
from tests.support.stack import metric_value


def test_sink_health_queue_depth_and_lost_records_are_exported() -> None:
    health = SinkHealth("ok", "", 0, 0, 0)
    metrics = Metrics()
    metrics.watch_audit(lambda: health)
    text = metrics.render().decode()
    assert metric_value(text, "remit_audit_sink_healthy") == 1
    assert metric_value(text, "remit_audit_sink_state", state="ok") == 1

    health = SinkHealth("stalled", "stdout stalled", 7, 12, 1)
    text = metrics.render().decode()
    assert metric_value(text, "remit_audit_sink_healthy") == 0
    assert metric_value(text, "remit_audit_sink_state", state="stalled") == 1
    assert metric_value(text, "remit_audit_sink_state", state="ok") == 0
    assert metric_value(text, "remit_audit_queue_depth") == 7
    assert metric_value(text, "remit_audit_records_lost_total") == 12


def test_kept_label_children_count_into_the_labelled_series() -> None:
    metrics = Metrics()
    for _ in range(3):
        metrics.decided("allow", Reason.ALLOWED).inc()
    metrics.call_decided("agents/files", "bot", "read_file", "deny", Reason.NO_MATCHING_RULE).inc()
    assert metrics.decided("allow", "allowed") is metrics.decisions.labels("allow", "allowed")
    text = metrics.render().decode()
    assert metric_value(text, "remit_decisions_total", effect="allow", reason="allowed") == 3
    called = {"server": "agents/files", "agent": "bot", "tool": "read_file", "effect": "deny"}
    assert (
        metric_value(text, "remit_call_decisions_total", **called, reason="no_matching_rule") == 1
    )
