"""Prometheus metrics of the operator, on their own registry and port (REMIT_METRICS_PORT).

What a platform team watches: how long a sync (compile, sign, push) takes, how pushes end,
how many sidecars of each server run the current bundle, and compile failures.
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_SYNC_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class OperatorMetrics:
    """Counters, histograms and gauges of one operator process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.syncs = Counter(
            "remit_operator_syncs",
            "Sync passes per MCPServer by result (ok, compile_error).",
            ["server", "result"],
            registry=self.registry,
        )
        self.sync_seconds = Histogram(
            "remit_operator_sync_seconds",
            "Time of one sync pass: compile, sign, push to every sidecar, write status.",
            buckets=_SYNC_BUCKETS,
            registry=self.registry,
        )
        self.pushes = Counter(
            "remit_operator_pushes",
            "Bundle pushes to sidecars by result (ok, rollback, failed).",
            ["server", "result"],
            registry=self.registry,
        )
        self.push_bytes = Counter(
            "remit_operator_push_bytes",
            "Bytes of bundles installed by sidecars, by kind (full, delta).",
            ["server", "kind"],
            registry=self.registry,
        )
        self.sidecars = Gauge(
            "remit_operator_sidecars",
            "Sidecars per MCPServer by state (desired, ready, in_sync, too_old for the bundle).",
            ["server", "state"],
            registry=self.registry,
        )
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def serve(self, port: int, host: str = "0.0.0.0") -> None:  # noqa: S104 - scraped in-cluster
        """Serve ``/metrics`` on ``port`` (0: do not serve)."""
        if port:
            self._server, self._thread = start_http_server(port, host, registry=self.registry)

    def close(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
