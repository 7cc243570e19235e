"""OpenTelemetry traces of the gateway, exported over OTLP only when an endpoint is configured.

With no endpoint (the default) :func:`start_tracing` returns ``None``, nothing of OpenTelemetry
is imported and the request path is exactly the untraced one: the app checks one attribute.
With one, this module builds its own ``TracerProvider`` (never the process-global one) with a
batch processor and the OTLP/HTTP exporter, so spans leave from a background thread.

Per HTTP request on the MCP endpoint, :meth:`Tracing.serve` opens a SERVER span, continuing
the caller's W3C ``traceparent``/``tracestate`` when present (the headers, else the message's
``params._meta``: ``tracemeta.py``); the guard (``traced.py``) adds
``authenticate``, ``decide`` and ``forward`` children and the attributes of what it decided,
and ``forward`` hands its own context on to the upstream. Attribute names follow the
OpenTelemetry MCP and GenAI semantic conventions where they define one (see
docs/observability.md); Remit's own live under ``remit.``.

``REMIT_OTLP_LOGS`` additionally exports every decision and outcome record as an OTLP log
record (body: the sealed JSON line), alongside stdout, never instead of it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from remit.gateway.asgi import Receive, Scope, Send
from remit.settings import setting

if TYPE_CHECKING:  # only for annotations: the SDK is imported when tracing starts
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

App = Callable[[Scope, Receive, Send], Awaitable[None]]

INSTRUMENTATION = "remit.gateway"
#: The request's root span, so records written anywhere in the request annotate it.
ROOT: contextvars.ContextVar[Span | None] = contextvars.ContextVar("remit_root_span", default=None)


def _ratio(raw: str, variable: str) -> float:
    from remit.errors import SettingsError  # noqa: PLC0415 - keep the module's imports minimal

    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise SettingsError(f"{variable}: expected a ratio between 0 and 1, got {raw!r}")
    return value


def _endpoint(raw: str, variable: str) -> str:
    from urllib.parse import urlsplit  # noqa: PLC0415

    from remit.errors import SettingsError  # noqa: PLC0415

    value = raw.strip().rstrip("/")
    if value and (urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc):
        raise SettingsError(f"{variable}: expected an http(s) URL, got {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """Where and how much to trace; an empty ``endpoint`` turns tracing (and OTLP logs) off."""

    endpoint: str = setting(
        "",
        env="OTLP_ENDPOINT",
        doc="OTLP/HTTP base URL (e.g. `http://otel-collector:4318`); traces go to "
        "`/v1/traces`, records (with `REMIT_OTLP_LOGS`) to `/v1/logs`. Empty: no tracing.",
        parse=_endpoint,
    )
    sample_ratio: float = setting(
        1.0,
        env="TRACE_SAMPLE_RATIO",
        doc="Share of new traces sampled (a caller's sampled flag is followed).",
        parse=_ratio,
    )
    logs: bool = setting(
        False,
        env="OTLP_LOGS",
        doc="Also export every decision and outcome record as an OTLP log record.",
    )
    service_name: str = setting(
        "remit-gateway", env="OTEL_SERVICE_NAME", doc="`service.name` of the spans."
    )


_TRACE_HEADERS = (b"traceparent", b"tracestate")


def trace_headers(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, list[str]]:
    """The caller's trace context headers (only those: nothing else is read)."""
    found: dict[str, list[str]] = {}
    for name, value in headers:
        lowered = name.lower()
        if lowered in _TRACE_HEADERS:
            found.setdefault(lowered.decode(), []).append(value.decode("latin-1"))
    return found


class Tracing:
    """The gateway's tracer and, optionally, its OTLP log exporter."""

    def __init__(
        self,
        provider: TracerProvider,
        logs: LoggerProvider | None,
        attributes: Mapping[str, str],
    ) -> None:
        from opentelemetry.trace.propagation.tracecontext import (  # noqa: PLC0415
            TraceContextTextMapPropagator,
        )

        self.provider = provider
        self.tracer: Tracer = provider.get_tracer(INSTRUMENTATION)
        self.logs = logs
        self.logger = logs.get_logger(INSTRUMENTATION) if logs is not None else None
        self.propagator = TraceContextTextMapPropagator()
        self.attributes = dict(attributes)

    async def serve(self, app: App, scope: Scope, receive: Receive, send: Send) -> None:
        """Run ``app`` for one HTTP request inside its SERVER span."""
        from opentelemetry import context as otel_context  # noqa: PLC0415
        from opentelemetry.trace import (  # noqa: PLC0415
            SpanKind,
            Status,
            StatusCode,
            set_span_in_context,
        )

        carrier = trace_headers(scope["headers"])
        if "traceparent" not in carrier and scope["method"] == "POST":  # MCP's params._meta
            from remit.gateway.tracemeta import peek_meta  # noqa: PLC0415

            carrier, receive = await peek_meta(receive)
        parent = self.propagator.extract(carrier)
        span = self.tracer.start_span(
            "mcp", context=parent, kind=SpanKind.SERVER, attributes=self.attributes
        )
        span.set_attribute("http.request.method", scope["method"])
        span.set_attribute("url.path", scope["path"])
        status: list[int] = []

        async def traced_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        token = otel_context.attach(set_span_in_context(span, parent))
        root = ROOT.set(span)
        try:
            await app(scope, receive, traced_send)
        finally:
            ROOT.reset(root)
            otel_context.detach(token)
            if status:
                span.set_attribute("http.response.status_code", status[0])
                if status[0] >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            span.end()

    def inject(self, headers: MutableMapping[str, str]) -> None:
        """Write the current span's ``traceparent`` (and ``tracestate``) into ``headers``,
        replacing whatever the caller sent."""
        for name in ("traceparent", "tracestate"):
            headers.pop(name, None)
        self.propagator.inject(headers)

    def emit_record(self, line: bytes, attributes: Mapping[str, Any]) -> None:
        """Export one sealed record line as an OTLP log record (if logs are on)."""
        if self.logger is not None:
            self.logger.emit(
                body=line.decode(), attributes=dict(attributes), event_name="remit.audit.record"
            )

    def shutdown(self) -> None:
        """Flush and stop the exporters (called when the gateway stops)."""
        self.provider.shutdown()
        if self.logs is not None:
            self.logs.shutdown()


def start_tracing(
    settings: TracingSettings, *, server: str, pod: str, exporter: Any = None
) -> Tracing | None:
    """The gateway's tracing, or ``None`` (and no OpenTelemetry import) without an endpoint.

    ``exporter`` replaces the OTLP span exporter (for benchmarks measuring the SDK alone).
    """
    if not settings.endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased  # noqa: PLC0415

    resource = Resource.create(
        {"service.name": settings.service_name, "service.instance.id": pod, "remit.server": server}
    )
    sampler = ParentBased(TraceIdRatioBased(settings.sample_ratio))
    provider = TracerProvider(resource=resource, sampler=sampler)
    span_exporter = exporter or OTLPSpanExporter(endpoint=f"{settings.endpoint}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    logs = None
    if settings.logs:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import (  # noqa: PLC0415
            OTLPLogExporter,
        )
        from opentelemetry.sdk._logs import LoggerProvider  # noqa: PLC0415
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor  # noqa: PLC0415

        logs = LoggerProvider(resource=resource)
        logs.add_log_record_processor(
            BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{settings.endpoint}/v1/logs"))
        )
    attributes = {"network.transport": "tcp", "network.protocol.name": "http"}
    return Tracing(provider, logs, attributes)


__all__ = ["ROOT", "Tracing", "TracingSettings", "start_tracing", "trace_headers"]
