"""The audit sink's health in the gateway's metrics, read at scrape time."""

from __future__ import annotations

from remit.audit import SinkHealth
from remit.gateway.metrics import Metrics
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
