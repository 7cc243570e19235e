"""A real OTLP/HTTP receiver: protobuf ``ExportTraceServiceRequest``/``ExportLogsServiceRequest``
over HTTP POST, decoded with the ``opentelemetry-proto`` messages, served by aiohttp on a thread.

Tests point a gateway's ``REMIT_OTLP_ENDPOINT`` at :attr:`OtlpReceiver.endpoint` and read back
the spans and log records the exporter really sent (a wrong content type or an undecodable body
is answered 400 and kept in ``errors``, so a broken exporter fails the test that waits).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.support.ports import free_port

T = TypeVar("T")


def value(any_value: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as a Python value."""
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


@dataclass
class Span:
    """One received span, with its attributes decoded."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    resource: dict[str, Any]


@dataclass
class OtlpReceiver:
    """What the receiver got so far."""

    port: int
    spans: list[Span] = field(default_factory=list)
    logs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for(self, found: Callable[[OtlpReceiver], T | None], timeout: float = 15.0) -> T:
        """Poll until ``found`` returns something (the exporter batches on its own thread)."""
        deadline = time.monotonic() + timeout
        while True:
            result = found(self)
            if result is not None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert not self.errors, self.errors
        assert result is not None, f"not received within {timeout}s; spans: {self.spans}"
        return result


def _attributes(items: Any) -> dict[str, Any]:
    return {item.key: value(item.value) for item in items}


def _app(receiver: OtlpReceiver) -> web.Application:
    async def traces(request: web.Request) -> web.Response:
        if request.content_type != "application/x-protobuf":
            receiver.errors.append(f"traces: content type {request.content_type}")
            return web.Response(status=415)
        message = ExportTraceServiceRequest()
        try:
            message.ParseFromString(await request.read())
        except DecodeError as exc:
            receiver.errors.append(f"traces: {exc}")
            return web.Response(status=400)
        for resource_spans in message.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    receiver.spans.append(
                        Span(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            kind=span.kind,
                            attributes=_attributes(span.attributes),
                            events=[(e.name, _attributes(e.attributes)) for e in span.events],
                            resource=resource,
                        )
                    )
        body = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    async def logs(request: web.Request) -> web.Response:
        message = ExportLogsServiceRequest()
        try:
            message.ParseFromString(await request.read())
        except DecodeError as exc:
            receiver.errors.append(f"logs: {exc}")
            return web.Response(status=400)
        for resource_logs in message.resource_logs:
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    receiver.logs.append((value(record.body), _attributes(record.attributes)))
        body = ExportLogsServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    app.router.add_post("/v1/logs", logs)
    return app


@contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """Serve OTLP/HTTP on a free loopback port for the duration of the block."""
    receiver = OtlpReceiver(free_port())
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner = web.AppRunner(_app(receiver))

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", receiver.port).start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, name="otlp-receiver", daemon=True)
    thread.start()
    assert ready.wait(10), "the OTLP receiver did not start"
    try:
        yield receiver
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
