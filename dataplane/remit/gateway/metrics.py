"""Prometheus metrics of one gateway, on its own registry (no module-global state)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from remit.audit.health import SinkHealth
from remit.policy.decision import UPSTREAM_REASONS

JSONRPC_ERROR = "jsonrpc_error"  # the reason label of an answer carrying a JSON-RPC error

_SINK_STATES = ("ok", "stalled", "failing", "closed")

_LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0)
_UPSTREAM_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0)


class Children:
    """A labelled counter's children by label values, kept after their first use.

    ``Counter.labels`` converts every value to ``str`` and takes the metric's lock on each
    call; the hot path counts every decision twice, with label values drawn from bounded sets
    (reason codes, and the names ``labels.py`` bounds), so each child is looked up once and
    then found in a plain dict. The dict holds no more than the metric's own children.
    """

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: Counter) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Counter] = {}

    def __call__(self, *values: str) -> Counter:
        """The child for ``values`` (created on first use, as ``labels`` does)."""
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class Metrics:
    """The gateway's counters, histograms and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.decisions = Counter(
            "remit_decisions",
            "Decisions by effect and reason code.",
            ["effect", "reason"],
            registry=self.registry,
        )
        self.call_decisions = Counter(
            "remit_call_decisions",
            "Decisions by server, agent, tool (tool name, resource URI or prompt name), effect "
            "and reason code. Agents and tools the bundle in force does not name are counted as "
            "`other` (bounded cardinality); `none` when there is no agent or target.",
            ["server", "agent", "tool", "effect", "reason"],
            registry=self.registry,
        )
        self.decided = Children(self.decisions)
        self.call_decided = Children(self.call_decisions)
        self.decision_seconds = Histogram(
            "remit_decision_seconds",
            "Time to authenticate, decide and record one request, before forwarding.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_seconds = Histogram(
            "remit_upstream_seconds",
            "Time from forwarding a call to its response from the MCP server.",
            buckets=_UPSTREAM_BUCKETS,
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "remit_upstream_errors",
            "Forwarded calls that failed at the transport level (kind=transport, by the "
            "outcome's reason code) or were answered with a JSON-RPC error (kind=jsonrpc, "
            "reason=jsonrpc_error).",
            ["kind", "reason"],
            registry=self.registry,
        )
        for reason in sorted(UPSTREAM_REASONS):  # a bounded set: each series exists from 0
            self.upstream_errors.labels("transport", reason)
        self.upstream_errors.labels("jsonrpc", JSONRPC_ERROR)
        self.authentication_failures = Counter(
            "remit_authentication_failures",
            "Requests rejected before any decision, by RFC 6750 error code.",
            ["error"],
            registry=self.registry,
        )
        self.audit_failures = Counter(
            "remit_audit_failures",
            "Decision records that could not be written.",
            registry=self.registry,
        )
        self.bundle_serial = Gauge(
            "remit_bundle_serial", "Serial of the bundle in force.", registry=self.registry
        )
        self.bundle_installs = Counter(
            "remit_bundle_installs",
            "Bundle pushes by result (installed, unchanged, rejected).",
            ["result"],
            registry=self.registry,
        )
        self.refusals_aggregated = Counter(
            "remit_refusals_aggregated",
            "Refusals of unauthenticated callers counted into a summary record instead of one "
            "record each, by reason code.",
            ["reason"],
            registry=self.registry,
        )
        self.server_messages_dropped = Counter(
            "remit_server_messages_dropped",
            "Server-to-client notifications and requests not relayed to the caller, by why "
            "(progress_not_theirs, resource_not_readable, unknown_method, no_bundle).",
            ["reason"],
            registry=self.registry,
        )
        self.bundle_refusals = Counter(
            "remit_bundle_refusals",
            "Bundle pushes refused, by reason (signature, malformed, rollback, too_large, "
            "wrong_server, stale, unsupported, delta_base, delta_digest); the bundle in force "
            "stays.",
            ["reason"],
            registry=self.registry,
        )
        self.bundle_last_refusal = Gauge(
            "remit_bundle_last_refusal_timestamp_seconds",
            "When the last bundle push was refused (Unix time; 0 if never).",
            registry=self.registry,
        )
        self.tool_pin_mismatches = Counter(
            "remit_tool_pin_mismatches",
            "Tool definitions that differ from their pin.",
            registry=self.registry,
        )
        self.connection_refusals = Counter(
            "remit_connection_refusals",
            "Connections and requests refused by a connection limit, by listener and reason.",
            ["listener", "reason"],
            registry=self.registry,
        )

    def watch_bundle(self, bundle: Callable[[], BundleTimes | None]) -> None:
        """Report the age of the bundle in force and its next grant expiry, at scrape time."""
        self.registry.register(_BundleCollector(bundle))

    def watch_audit(self, health: Callable[[], SinkHealth]) -> None:
        """Report the audit sink's health, queue and lost records, read at scrape time."""
        self.registry.register(_AuditCollector(health))

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


class BundleTimes(NamedTuple):
    """When the bundle in force was issued and when its next grant expires (Unix times)."""

    issued: float
    next_expiry: float | None
    now: float


class _BundleCollector(Collector):
    """The bundle's age and next grant expiry, computed at each scrape."""

    def __init__(self, bundle: Callable[[], BundleTimes | None]) -> None:
        self._bundle = bundle

    def collect(self) -> Iterator[Metric]:
        times = self._bundle()
        age = GaugeMetricFamily(
            "remit_bundle_age_seconds",
            "Seconds since the bundle in force was issued (absent without a bundle); the "
            "operator re-signs a bundle well before REMIT_MAX_BUNDLE_AGE_SECONDS, so an age "
            "near that limit means pushes stopped.",
        )
        expiry = GaugeMetricFamily(
            "remit_grant_next_expiry_timestamp_seconds",
            "When the first ConsentGrant in the bundle in force expires (Unix time; absent "
            "when no grant expires).",
        )
        if times is not None:
            age.add_metric([], max(0.0, times.now - times.issued))
            if times.next_expiry is not None:
                expiry.add_metric([], times.next_expiry)
        yield age
        yield expiry


class _AuditCollector(Collector):
    """The audit sink's condition, asked at each scrape (nothing on the request path)."""

    def __init__(self, health: Callable[[], SinkHealth]) -> None:
        self._health = health

    def collect(self) -> Iterator[Metric]:
        health = self._health()
        yield GaugeMetricFamily(
            "remit_audit_sink_healthy",
            "1 while the audit sink writes normally, 0 when stalled, failing or closed.",
            value=1.0 if health.ok else 0.0,
        )
        state = GaugeMetricFamily(
            "remit_audit_sink_state", "The audit sink's state (1 for the current one).",
            labels=["state"],
        )  # fmt: skip
        for name in _SINK_STATES:
            state.add_metric([name], 1.0 if health.state == name else 0.0)
        yield state
        yield GaugeMetricFamily(
            "remit_audit_queue_depth",
            "Decision records queued or being written by the audit writer.",
            value=float(health.queued),
        )
        yield CounterMetricFamily(
            "remit_audit_records_lost",
            "Records that never reached the audit sink (refused, discarded or failed); each gap "
            "is declared in the log by a recover marker.",
            value=float(health.lost),
        )
