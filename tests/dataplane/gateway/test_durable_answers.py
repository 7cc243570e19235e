"""The default durability through the real proxy, guard, chain and file sink: the decision
record is written before the call is forwarded, its fsync runs while the upstream works, and
neither the outcome nor anything of the answer follows before that fsync; the outcome is
written before the answer. A failed fsync withholds the answer and denies what follows.
Syncs are held and released by the test (no sleeps)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from remit.audit import AuditChain, FileSink
from remit.errors import UpstreamError
from remit.gateway.durability import gated
from remit.gateway.exchange import Exchange
from remit.gateway.guard import RemitGuard
from remit.gateway.hooks import AllowAllHooks, HttpRequest, Identity, Rejection
from remit.gateway.metrics import Metrics
from remit.gateway.pending import Call, PendingCalls
from remit.gateway.protocol import parse_body
from remit.gateway.proxy import McpProxy, ProxySettings
from remit.gateway.state import PolicyState
from tests.dataplane.audit.helpers import HeldSync
from tests.support.policies import bundle_for, policy, rule, server, who

ALICE = who("alice@example.com", "support-bot")
READ_TOOL = {"name": "read_file", "inputSchema": {"type": "object"}}
CALL = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "read_file"}}
ANSWER = {"jsonrpc": "2.0", "id": 7, "result": {"content": [{"type": "text", "text": "hi"}]}}


class Journal:
    """What happened, in order, with what the audit file held at each step."""

    def __init__(self, path: Path, sync: HeldSync) -> None:
        self.path = path
        self.sync = sync
        self.events: list[tuple[str, list[str], int]] = []  # (event, record kinds, syncs done)

    def note(self, event: str) -> None:
        kinds = [orjson.loads(line)["type"] for line in self.path.read_bytes().splitlines()]
        self.events.append((event, kinds, len(self.sync.sizes)))


class Answer:
    """An upstream answer (JSON) whose headers have arrived."""

    status = 200
    kind = "json"

    def header(self, name: bytes) -> str | None:
        return None

    def client_headers(self) -> list[tuple[bytes, bytes]]:
        return []

    async def read(self, limit: int | None = None) -> bytes:
        return orjson.dumps(ANSWER)

    def body_empty(self) -> bool:
        return False

    def close(self) -> None: ...

    def abort(self) -> None: ...


class StreamedAnswer(Answer):
    """An upstream answer as an event stream: a progress notification, then the response;
    with ``broken`` the stream fails before its first event (the gateway answers an error)."""

    kind = "sse"

    def __init__(self, broken: bool) -> None:
        progress = {"jsonrpc": "2.0", "method": "notifications/message", "params": {}}
        self.chunks = [] if broken else [progress, ANSWER]
        self.broken = broken

    async def next_chunk(self, timeout: float | None = None) -> bytes:
        if self.broken:
            raise UpstreamError(502, "connection reset mid-stream")
        return b"data: " + orjson.dumps(self.chunks.pop(0)) + b"\n\n" if self.chunks else b""


class Upstream:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.forwarded = asyncio.Event()
        self.sent = 0
        self.fails = False  # answer with a transport failure instead
        self.streams = False  # answer with an event stream
        self.fails_streaming = False  # ... that fails before its first event

    async def send(self, method: str, headers: Any, body: bytes | None, limits: Any = None) -> Any:
        self.sent += 1
        self.journal.note("forward")
        self.forwarded.set()
        if self.fails:
            raise UpstreamError(502, "connection refused")
        return StreamedAnswer(broken=self.fails_streaming) if self.streams else Answer()

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class Gateway:
    """The proxy and guard over a real chain in a real file, fsync held by the test."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sync = HeldSync(path)
        self.writes = threading.Semaphore(0)  # released once per write(2) of the sink
        self.journal = Journal(path, self.sync)

        def write(fd: int, data: bytes) -> int:
            written = os.write(fd, data)
            self.writes.release()
            return written

        sink = FileSink(path, fsync_strict=False, fsync_function=self.sync, write=write)
        self.chain = AuditChain(sink, server="agents/files", pod="pod-a")
        state = PolicyState()
        state.install(bundle_for(server("files"), policy("p", rule("read", tools=["read_*"]))))
        self.guard = RemitGuard(state, self.chain, Metrics(), pod="pod-a")
        self.upstream = Upstream(self.journal)
        self.proxy = McpProxy(ProxySettings(), self.guard, self.upstream)  # type: ignore[arg-type]

        async def authenticate(request: HttpRequest) -> Identity | Rejection:
            return ALICE

        self.guard.authenticate = authenticate  # type: ignore[method-assign]

    async def open(self) -> None:
        """Write the chain's first record and let its sync through."""
        await self.chain.mark("genesis")
        await self.written()
        await self.sync.started()
        self.sync.release.release()
        point = self.chain.sync_point()
        assert point is not None
        await point.wait()
        tools = {"jsonrpc": "2.0", "id": 1, "result": {"tools": [READ_TOOL]}}
        listing = parse_body(orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        await self.guard.transform(ALICE, listing.messages[0], None, tools)  # pins the tool

    async def written(self) -> None:
        """Until the sink's writer thread has written one more batch."""
        assert await asyncio.to_thread(self.writes.acquire, True, 10)

    async def post(self) -> tuple[int, dict[str, Any]]:
        body = orjson.dumps(CALL)
        scope = {
            "type": "http", "method": "POST", "path": "/mcp", "query_string": b"",
            "headers": [
                (b"content-type", b"application/json"),
                (b"accept", b"application/json, text/event-stream"),
                (b"mcp-protocol-version", b"2025-06-18"),
            ],
        }  # fmt: skip
        incoming = [{"type": "http.request", "body": body, "more_body": False}]
        sent: list[dict[str, Any]] = []
        stays = asyncio.Event()  # the client stays connected

        async def receive() -> dict[str, Any]:
            if incoming:
                return incoming.pop(0)
            await stays.wait()
            return {"type": "http.disconnect"}

        async def send(event: dict[str, Any]) -> None:
            answers = b'"id":' in event.get("body", b"")  # the call's response or error
            self.journal.note(event["type"] + (" (answer)" if answers else ""))
            sent.append(event)

        await self.proxy(scope, receive, send)
        payload = b"".join(e.get("body", b"") for e in sent[1:])
        if self.upstream.streams:  # the last event's data: the answer, or the gateway's error
            data = [line for line in payload.splitlines() if line.startswith(b"data:")]
            return sent[0]["status"], orjson.loads(data[-1][5:])
        return sent[0]["status"], orjson.loads(payload)


@pytest.mark.parametrize("streamed", [False, True])
async def test_the_answer_waits_for_the_decision_fsync_which_runs_beside_the_upstream(
    tmp_path: Path, streamed: bool
) -> None:
    """Streamed, the first thing sent is the stream's start, before any outcome is recorded:
    only the gate on the client's ``send`` holds it."""
    gateway = Gateway(tmp_path / "audit.jsonl")
    gateway.upstream.streams = streamed
    await gateway.open()
    call = asyncio.ensure_future(gateway.post())
    await gateway.written()  # the decision
    await gateway.sync.started()  # ... and its fsync, held
    await gateway.upstream.forwarded.wait()  # forwarded while that fsync is held
    for _ in range(20):  # the upstream has answered; the answer waits
        await asyncio.sleep(0)
    assert not call.done()
    assert [event for event, _, _ in gateway.journal.events] == ["forward"]
    gateway.sync.release.release()  # the decision is on disk: the answer may go
    status, answer = await call
    assert (status, answer) == (200, ANSWER)
    forward, start, *_ = gateway.journal.events
    assert forward == ("forward", ["chain", "decision"], 1)  # written, not yet synced
    assert start[0] == "http.response.start"
    if not streamed:
        assert start[1] == ["chain", "decision", "outcome"]  # the outcome written before it
    assert start[2] == 2  # the decision's fsync done
    body = next(e for e in gateway.journal.events if e[0] == "http.response.body (answer)")
    assert body[1] == ["chain", "decision", "outcome"]  # its response follows the outcome
    lines = gateway.path.read_bytes().splitlines(keepends=True)
    assert gateway.sync.sizes[1] >= len(b"".join(lines[:2]))  # it held the decision
    if gateway.sync.sizes[1] < gateway.path.stat().st_size:
        await gateway.sync.started()  # the outcome's fsync: the next group commit
        gateway.sync.release.release()
    await gateway.chain.close()
    assert gateway.sync.sizes[-1] == gateway.path.stat().st_size


async def test_a_failed_decision_fsync_withholds_the_answer_and_denies_what_follows(
    tmp_path: Path,
) -> None:
    gateway = Gateway(tmp_path / "audit.jsonl")
    await gateway.open()
    call = asyncio.ensure_future(gateway.post())
    await gateway.sync.started()
    await gateway.upstream.forwarded.wait()
    gateway.sync.fail = True
    gateway.sync.release.release()
    status, answer = await call
    assert status == 500
    assert answer["error"]["data"]["reason"] == "audit_unavailable"
    assert "result" not in answer  # nothing of the upstream's answer
    assert gateway.chain.health().state == "failing"
    status, answer = await gateway.post()  # the next call: denied, never forwarded
    assert answer["error"]["data"]["reason"] == "audit_unavailable"
    assert gateway.upstream.sent == 1
    kinds = [orjson.loads(line)["type"] for line in gateway.path.read_bytes().splitlines()]
    assert kinds == ["chain", "decision"]  # the forwarded call's decision, before it went
    await gateway.chain.close()


@pytest.mark.parametrize("streamed", [False, True])
async def test_the_gateway_own_error_about_the_upstream_also_waits_for_the_decision_fsync(
    tmp_path: Path, streamed: bool
) -> None:
    """Streamed: the upstream's stream breaks before its first event; the stream's start and
    the gateway's error event wait (the start before any outcome: only the gate holds it)."""
    gateway = Gateway(tmp_path / "audit.jsonl")
    await gateway.open()
    gateway.upstream.fails = not streamed
    gateway.upstream.streams = gateway.upstream.fails_streaming = streamed
    call = asyncio.ensure_future(gateway.post())
    await gateway.sync.started()
    await gateway.upstream.forwarded.wait()
    for _ in range(20):
        await asyncio.sleep(0)
    assert not call.done()  # the upstream failed at once; its 502 waits for the fsync
    gateway.sync.release.release()
    status, answer = await call
    assert status == (200 if streamed else 502)
    assert "result" not in answer
    assert gateway.journal.events[1][0] == "http.response.start"
    assert gateway.journal.events[1][2] == 2  # the decision's fsync done before it
    body = next(e for e in gateway.journal.events if e[0] == "http.response.body (answer)")
    assert body[1] == ["chain", "decision", "outcome"]  # the error follows the outcome
    await gateway.sync.started()
    gateway.sync.release.release()
    await gateway.chain.close()


async def _written_decision(tmp_path: Path) -> tuple[HeldSync, FileSink, Call]:
    """A decision line written to a file sink whose fsync is held, and a call carrying the
    point at which that line is on disk."""
    path = tmp_path / "audit.jsonl"
    sync = HeldSync(path)
    sink = FileSink(path, fsync_strict=False, fsync_function=sync)
    await sink.submit(b"decision\n", key="d", follows=None)
    message = parse_body(orjson.dumps(CALL)).messages[0]
    return sync, sink, Call(message, SimpleNamespace(synced=sink.sync_point()))


async def test_a_gated_send_holds_its_first_message_until_the_decisions_are_durable(
    tmp_path: Path,
) -> None:
    """What holds a GET stream's first event, or a server notification sent before the
    response: the client's ``send`` itself."""
    sync, sink, call = await _written_decision(tmp_path)
    sent: list[dict[str, Any]] = []

    async def send(event: dict[str, Any]) -> None:
        sent.append(event)

    held = gated(send, [call, None])
    assert held is not send
    first = asyncio.ensure_future(held({"type": "http.response.start", "status": 200}))
    await sync.started()
    for _ in range(20):
        await asyncio.sleep(0)
    assert not first.done()
    assert sent == []
    sync.release.release()
    await first
    await held({"type": "http.response.body", "body": b""})
    assert [event["type"] for event in sent] == ["http.response.start", "http.response.body"]
    assert gated(send, [call]) is send  # durable now: nothing to hold
    await sink.close()


async def test_a_gated_send_cancelled_while_held_holds_the_next_one_too(tmp_path: Path) -> None:
    """A send cancelled while it waits (the client went away, a task was cancelled) must not
    leave the gate open for a later send."""
    sync, sink, call = await _written_decision(tmp_path)
    sent: list[dict[str, Any]] = []

    async def send(event: dict[str, Any]) -> None:
        sent.append(event)

    held = gated(send, [call])
    first = asyncio.ensure_future(held({"type": "http.response.start", "status": 200}))
    await sync.started()
    await asyncio.sleep(0)
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first
    second = asyncio.ensure_future(held({"type": "http.response.start", "status": 200}))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not second.done()
    assert sent == []
    sync.release.release()
    await second
    assert [event["type"] for event in sent] == ["http.response.start"]
    await sink.close()


async def test_a_response_replayed_on_a_get_stream_waits_for_its_own_call_decision(
    tmp_path: Path,
) -> None:
    """A response to a call pending from an earlier POST, relayed on a GET stream whose gate
    already opened (or held only for the stream's own decision), e.g. a hostile upstream
    answering there instead: it waits for that call's decision record, and is dropped if that
    never syncs."""
    sync, sink, call = await _written_decision(tmp_path)
    pending = PendingCalls()
    message = call.message

    def post(call: Call) -> None:  # an earlier POST forwarded the call: pending in the session
        Exchange(AllowAllHooks(), ALICE, {7: call}, pending, session="s1")

    post(call)
    stream = Exchange(AllowAllHooks(), ALICE, {}, pending, session="s1")  # the GET
    relayed = asyncio.ensure_future(stream.message(ANSWER))
    await sync.started()
    for _ in range(20):
        await asyncio.sleep(0)
    assert not relayed.done()
    sync.release.release()
    assert await relayed == ANSWER
    # A decision whose sync fails: its replayed response is dropped, not relayed.
    await sink.submit(b"decision\n", key="e", follows="d")
    post(Call(message, SimpleNamespace(synced=sink.sync_point())))
    sync.fail = True
    await sync.started()
    sync.release.release()
    assert await stream.message(ANSWER) is None
    await sink.close()
