"""The proxy's HTTP-level rules, checked with raw requests against real servers on loopback.

Header/body mismatches, malformed and oversized bodies, batches, authentication and session
rejections, an unreachable upstream, the GET stream with ``Last-Event-ID`` and DELETE.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest

from remit.gateway.hooks import AllowAllHooks
from tests.support.gateway_hooks import DENIED_TOOL, RecordingHooks
from tests.support.ports import free_port
from tests.support.servers import files_server, proxy_server

MODERN = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
}
ACCEPT = "application/json, text/event-stream"


def call(method: str, id_: int = 1, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": {**params, "_meta": META}}


def modern_headers(method: str, name: str | None = None, **extra: str) -> dict[str, str]:
    headers = {
        "authorization": "Bearer alice",
        "accept": ACCEPT,
        "content-type": "application/json",
        "mcp-protocol-version": MODERN,
        "mcp-method": method,
        **extra,
    }
    if name is not None:
        headers["mcp-name"] = name
    return headers


def batch_headers() -> dict[str, str]:
    headers = modern_headers("-")
    del headers["mcp-method"]
    return headers


@pytest.fixture(scope="module")
def hooks() -> RecordingHooks:
    return RecordingHooks()


@pytest.fixture(scope="module")
def gateway(hooks: RecordingHooks) -> Iterator[str]:
    with files_server() as upstream, proxy_server(upstream, hooks, max_body_bytes=4096) as url:
        yield url


@pytest.fixture(scope="module")
def json_gateway(hooks: RecordingHooks) -> Iterator[str]:
    with files_server(json_response=True) as upstream, proxy_server(upstream, hooks) as url:
        yield url


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json"
    error: dict[str, Any] = response.json()["error"]
    return error


async def test_modern_call_passes_when_headers_agree(gateway: str, http: httpx.AsyncClient) -> None:
    body = call("tools/call", name="read_file", arguments={"path": "/data/readme.txt"})
    response = await http.post(
        gateway, json=body, headers=modern_headers("tools/call", "read_file")
    )
    assert response.status_code == 200
    assert "Welcome" in response.text


@pytest.mark.parametrize(
    ("header", "value", "problem"),
    [
        ("mcp-name", "read_file", "mcp-name"),
        ("mcp-method", "tools/list", "mcp-method"),
        ("mcp-protocol-version", "2026-07-28", None),
        ("mcp-param-path", "/etc/shadow", "Mcp-Param"),
    ],
)
async def test_header_disagreeing_with_body_is_rejected(
    gateway: str, http: httpx.AsyncClient, header: str, value: str, problem: str | None
) -> None:
    body = call("tools/call", name=DENIED_TOOL, arguments={"path": "/data/readme.txt"})
    headers = modern_headers("tools/call", DENIED_TOOL)
    headers[header] = value
    response = await http.post(gateway, json=body, headers=headers)
    if problem is None:  # the control: agreeing headers reach the decision (denied tool)
        assert response.status_code == 200
        assert response.json()["result"]["isError"] is True
        return
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == -32020
    assert problem.lower() in error["message"].lower()
    assert response.json()["id"] == 1


async def test_modern_request_without_method_header_is_rejected(
    gateway: str, http: httpx.AsyncClient
) -> None:
    headers = modern_headers("tools/list")
    del headers["mcp-method"]
    response = await http.post(gateway, json=call("tools/list"), headers=headers)
    assert response.status_code == 400
    assert error_of(response)["code"] == -32020


@pytest.mark.parametrize("body", [b"{not json", b"", b'{"jsonrpc": "2.0", "id": 1, "method": '])
async def test_malformed_json_is_a_parse_error(
    gateway: str, http: httpx.AsyncClient, body: bytes
) -> None:
    response = await http.post(gateway, content=body, headers=modern_headers("tools/list"))
    assert response.status_code == 400
    assert error_of(response)["code"] == -32700


@pytest.mark.parametrize(
    "body",
    [
        [],
        "tools/list",
        {"jsonrpc": "1.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": True, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": [1]},
        {"jsonrpc": "2.0", "id": 1},
    ],
)
async def test_invalid_request_shape_is_rejected(
    gateway: str, http: httpx.AsyncClient, body: Any
) -> None:
    response = await http.post(gateway, json=body, headers=modern_headers("tools/list"))
    assert response.status_code == 400
    assert error_of(response)["code"] == -32600


async def test_oversize_body_with_content_length_is_refused(
    gateway: str, http: httpx.AsyncClient
) -> None:
    body = call("tools/call", name="write_file", arguments={"path": "/a", "content": "x" * 5000})
    response = await http.post(
        gateway, json=body, headers=modern_headers("tools/call", "write_file")
    )
    assert response.status_code == 413
    assert error_of(response)["code"] == -32600


async def test_oversize_chunked_body_is_refused_while_reading(gateway: str) -> None:
    host, port = gateway.split("/")[2].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        "POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"400\r\n" + b" " * 1024 + b"\r\n"
    writer.write(head.encode() + chunk * 6)  # 6 KiB, no final chunk: never complete
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert status_line.split()[1] == b"413"


async def test_batch_with_a_denied_element_is_rejected_whole(
    gateway: str, http: httpx.AsyncClient, hooks: RecordingHooks
) -> None:
    hooks.outcomes.clear()
    batch = [
        call("tools/list", 1),
        call("tools/call", 2, name=DENIED_TOOL, arguments={"path": "/data/readme.txt"}),
    ]
    response = await http.post(gateway, json=batch, headers=batch_headers())
    assert response.status_code == 400
    assert error_of(response)["code"] == -32600
    assert hooks.outcomes == []  # nothing was forwarded


async def test_batch_routing_headers_must_agree_with_every_element(
    gateway: str, http: httpx.AsyncClient
) -> None:
    batch = [call("tools/list", 1), call("prompts/list", 2)]
    headers = batch_headers() | {"mcp-method": "tools/list"}
    response = await http.post(gateway, json=batch, headers=headers)
    assert response.status_code == 400
    assert error_of(response)["code"] == -32020


async def test_admitted_batch_is_forwarded_and_the_upstream_answers(
    gateway: str, http: httpx.AsyncClient, hooks: RecordingHooks
) -> None:
    hooks.outcomes.clear()
    batch = [call("tools/list", 1), call("tools/list", 2)]
    response = await http.post(gateway, json=batch, headers=batch_headers())
    # The SDK server (2025-06-18 and later) does not accept batches; its answer is relayed.
    assert response.status_code == 400
    assert error_of(response)["code"] == -32600
    assert sorted(method for method, _ in hooks.outcomes) == ["tools/list", "tools/list"]


async def test_missing_credentials_get_the_hooks_rejection(
    gateway: str, http: httpx.AsyncClient
) -> None:
    headers = modern_headers("tools/list")
    del headers["authorization"]
    response = await http.post(gateway, json=call("tools/list"), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer resource_metadata=")
    assert response.json() == {"error": "invalid_token"}


async def test_wrong_path_and_method_are_refused(gateway: str, http: httpx.AsyncClient) -> None:
    assert (await http.post(gateway + "x", json={})).status_code == 404
    response = await http.put(gateway, json={})
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]


async def test_unreachable_upstream_is_a_502_json_rpc_error(http: httpx.AsyncClient) -> None:
    dead = f"http://127.0.0.1:{free_port()}/mcp"
    with proxy_server(dead, AllowAllHooks()) as url:
        response = await http.post(
            url, json=call("tools/list", 7), headers=modern_headers("tools/list")
        )
    assert response.status_code == 502
    assert response.json()["id"] == 7
    assert error_of(response)["code"] == -32000
    assert "upstream unavailable" in error_of(response)["message"]


async def test_json_upstream_is_filtered_and_denials_answered(
    json_gateway: str, http: httpx.AsyncClient
) -> None:
    listed = await http.post(
        json_gateway, json=call("tools/list"), headers=modern_headers("tools/list")
    )
    names = {tool["name"] for tool in listed.json()["result"]["tools"]}
    assert "read_file" in names
    assert DENIED_TOOL not in names
    body = call("tools/call", name=DENIED_TOOL, arguments={"path": "/data/readme.txt"})
    denied = await http.post(
        json_gateway, json=body, headers=modern_headers("tools/call", DENIED_TOOL)
    )
    assert denied.json()["result"] == {
        "isError": True,
        "content": [{"type": "text", "text": f"denied: {DENIED_TOOL} is not allowed"}],
        "resultType": "complete",
    }


async def legacy_session(http: httpx.AsyncClient, url: str, token: str = "alice") -> str:
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"},
        },
    }
    headers = {"authorization": f"Bearer {token}", "accept": ACCEPT}
    response = await http.post(url, json=init, headers=headers)
    assert response.status_code == 200
    session = response.headers["mcp-session-id"]
    headers |= {"mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
    notify = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await http.post(url, json=notify, headers=headers)).status_code == 202
    return session


def legacy_headers(session: str, token: str = "alice") -> dict[str, str]:
    return {
        "authorization": f"Bearer {token}",
        "accept": ACCEPT,
        "mcp-session-id": session,
        "mcp-protocol-version": "2025-11-25",
    }


async def test_the_proxy_answers_404_when_its_hooks_refuse_a_session(
    gateway: str, http: httpx.AsyncClient
) -> None:
    # The stand-in hooks refuse the session (SessionBindings itself, which the real guard uses,
    # is tested in test_guard.py); what is checked here is the proxy's answer to a refusal.
    session = await legacy_session(http, gateway)
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    response = await http.post(gateway, json=listing, headers=legacy_headers(session, "mallory"))
    assert response.status_code == 404
    assert error_of(response)["code"] == -32001


async def test_sse_events_keep_ids_and_replay_stays_filtered(
    gateway: str, http: httpx.AsyncClient
) -> None:
    session = await legacy_session(http, gateway)
    headers = legacy_headers(session)
    listing = {"jsonrpc": "2.0", "id": 5, "method": "tools/list"}
    response = await http.post(gateway, json=listing, headers=headers)
    assert response.headers["content-type"].startswith("text/event-stream")
    event_ids = [line[4:] for line in response.text.splitlines() if line.startswith("id: ")]
    assert len(event_ids) == 2  # the priming event and the response, ids intact
    assert DENIED_TOOL not in response.text
    assert "read_file" in response.text
    # Resume after the priming event: the upstream replays the tools/list response. It was
    # already delivered, so the proxy cannot tie it to a pending request and drops it
    # rather than let an unfiltered list through.
    replay = headers | {"last-event-id": event_ids[0]}
    async with http.stream("GET", gateway, headers=replay) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        received = b""
        async for chunk in stream.aiter_bytes():
            received += chunk
            if b"\n\n" in received.replace(b"\r", b""):  # one whole event
                break
    assert b"id: " in received  # the resumed stream's priming event came through
    assert DENIED_TOOL.encode() not in received


async def test_get_stream_opens_and_delete_ends_the_session(
    gateway: str, http: httpx.AsyncClient, hooks: RecordingHooks
) -> None:
    session = await legacy_session(http, gateway)
    headers = legacy_headers(session)
    async with http.stream("GET", gateway, headers=headers) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["mcp-session-id"] == session
    deleted = await http.delete(gateway, headers=headers)
    assert deleted.status_code in (200, 204)
    assert session in hooks.ended
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    after = await http.post(gateway, json=listing, headers=headers)
    assert after.status_code == 404  # the upstream no longer knows the session


async def test_upstream_status_and_outcome_reported_for_errors(
    gateway: str, http: httpx.AsyncClient, hooks: RecordingHooks
) -> None:
    hooks.outcomes.clear()
    body = call("tools/call", name="read_file", arguments={"path": "/nope"})
    response = await http.post(
        gateway, json=body, headers=modern_headers("tools/call", "read_file")
    )
    assert response.status_code == 200
    assert orjson.loads(response.content)["result"]["isError"] is True
    ((method, outcome),) = hooks.outcomes
    assert method == "tools/call"
    assert outcome.status == 200


async def test_upstream_that_never_answers_is_a_504(http: httpx.AsyncClient) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # read nothing, answer nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        upstream = f"http://127.0.0.1:{port}/mcp"
        with proxy_server(upstream, AllowAllHooks(), response_timeout=0.3) as url:
            response = await http.post(
                url, json=call("tools/list", 4), headers=modern_headers("tools/list")
            )
    finally:
        server.close()
    assert response.status_code == 504
    assert response.json()["id"] == 4
    assert error_of(response)["code"] == -32000
    assert accepted  # the proxy did reach the upstream


class ExplodingHooks(AllowAllHooks):
    async def decide(self, identity: Any, call: Any, request: Any) -> Any:
        raise RuntimeError("bug in a hook")


async def test_a_failing_hook_is_an_internal_error_not_a_traceback(http: httpx.AsyncClient) -> None:
    with proxy_server("http://127.0.0.1:9/mcp", ExplodingHooks()) as url:
        response = await http.post(
            url, json=call("tools/list"), headers=modern_headers("tools/list")
        )
    assert response.status_code == 500
    assert error_of(response) == {"code": -32603, "message": "Internal error"}
    assert "bug in a hook" not in response.text
