"""Issue 10's gateway rules as pure functions: what a governed server must still answer.

completion/complete and resources/(un)subscribe decided per target, Host/Origin checks against
DNS rebinding, 2026-07-28 404s, optional whitespace in routing headers, cache scope on
per-caller results, and which upstream 4xx bodies are JSON-RPC errors to relay. The same rules
are exercised end to end by the conformance tier (tests/conformance/).
"""

from __future__ import annotations

from typing import Any

import pytest

from remit.errors import ProtocolError
from remit.gateway.bounds import DEFAULT_LIMITS
from remit.gateway.caching import mark_private
from remit.gateway.eras import check_removed, denial_status, rejection_answers
from remit.gateway.pending import Call
from remit.gateway.protocol import Message, check_routing_headers, classify
from remit.gateway.rebinding import check_host_and_origin
from remit.gateway.references import reference
from remit.policy.bundle import ServerSettings
from remit.policy.decision import Reason
from remit.policy.request import Request
from tests.support.policies import bundle_for, engine_for, policy, rule, server, who

MODERN_META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}


def _message(method: str, id_: int | None = 1, **params: Any) -> Message:
    raw: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if id_ is not None:
        raw["id"] = id_
    return classify(raw)


# -- what a request names --------------------------------------------------------------------


def test_completion_names_the_prompt_or_resource_template_its_ref_points_at() -> None:
    prompt = {"ref": {"type": "ref/prompt", "name": "summarise"}, "argument": {}}
    template = {"ref": {"type": "ref/resource", "uri": "files://{path}"}, "argument": {}}
    assert reference("completion/complete", prompt) == ("summarise", "prompt")
    assert reference("completion/complete", template) == ("files://{path}", "resource")


@pytest.mark.parametrize(
    "params",
    [{}, {"ref": "summarise"}, {"ref": {"type": "ref/tool", "name": "x"}},
     {"ref": {"type": "ref/prompt", "uri": "x"}}, {"ref": {"type": "ref/prompt", "name": ""}},
     {"ref": {"type": ["ref/prompt"], "name": "x"}}],
)  # fmt: skip
def test_a_malformed_completion_ref_names_nothing(params: dict[str, Any]) -> None:
    assert reference("completion/complete", params) == ("", None)


def test_subscribe_and_unsubscribe_name_their_resource() -> None:
    assert _message("resources/subscribe", uri="files://readme").target == "files://readme"
    assert _message("resources/unsubscribe", uri="files://readme").target == "files://readme"


# -- deciding completion as its target ---------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> Any:
    return engine_for(
        server(),
        policy(
            "p",
            rule("summarise", prompts=["summarise"]),
            rule("readme", resources=["files://readme*"]),
        ),
    )


def _complete(kind: str | None, name: str) -> Request:
    return Request(who(), "completion/complete", name, kind=kind)


def test_completion_is_decided_with_the_rules_of_what_it_completes(engine: Any) -> None:
    assert engine.decide(_complete("prompt", "summarise")).allowed
    assert engine.decide(_complete("resource", "files://readme/{part}")).allowed
    denied = engine.decide(_complete("prompt", "other"))
    assert denied.reason == Reason.NO_MATCHING_RULE
    # a resource rule does not let a prompt of the same name be completed, nor the reverse
    assert not engine.decide(_complete("prompt", "files://readme")).allowed
    assert not engine.decide(_complete("resource", "summarise")).allowed


def test_a_completion_naming_nothing_is_denied_as_invalid(engine: Any) -> None:
    assert engine.decide(_complete(None, "")).reason == Reason.INVALID_REQUEST


def test_subscribe_is_decided_per_resource(engine: Any) -> None:
    assert engine.decide(Request(who(), "resources/subscribe", "files://readme")).allowed
    denied = engine.decide(Request(who(), "resources/subscribe", "files://secret"))
    assert denied.reason == Reason.NO_MATCHING_RULE


def test_subscriptions_listen_is_allowed_to_an_authenticated_caller(engine: Any) -> None:
    assert engine.decide(Request(who(), "subscriptions/listen")).allowed


# -- DNS rebinding -----------------------------------------------------------------------------


def _settings(**spec: Any) -> ServerSettings:
    gateway = {"gateway": spec} if spec else {}
    doc = server(authentication={"issuer": "https://idp.example", "audience":
                 "https://files.example.com/mcp"}, **gateway)  # fmt: skip
    return bundle_for(doc).server


@pytest.mark.parametrize(
    "host",
    ["localhost", "localhost:9000", "127.0.0.1:9000", "[::1]:9000", "10.1.2.3", "files",
     "files:9000", "files.agents.svc", "files.agents.svc.cluster.local:9000",
     "files.example.com", "FILES.example.com:443"],
)  # fmt: skip
def test_safe_hosts_are_allowed_by_default(host: str) -> None:
    assert check_host_and_origin(host, None, _settings()) is None


@pytest.mark.parametrize(
    "host", ["evil.example.com", "evil.example.com:9000", "localhost.evil.com", "svc.evil.com",
             "files.agents.svc.evil.com", "[::1", "a:b", ""],
)  # fmt: skip
def test_a_rebound_or_malformed_host_is_refused_with_421(host: str) -> None:
    refused = check_host_and_origin(host, None, _settings())
    assert refused is not None
    assert (refused.status, refused.reason) == (421, Reason.HOST_NOT_ALLOWED)


def test_allowed_hosts_add_names_with_or_without_a_port() -> None:
    settings = _settings(allowedHosts=["mcp.corp.example", "other.example:8443"])
    assert check_host_and_origin("mcp.corp.example:1234", None, settings) is None
    assert check_host_and_origin("other.example:8443", None, settings) is None
    assert check_host_and_origin("other.example:8444", None, settings) is not None
    assert check_host_and_origin("x.example", None, _settings(allowedHosts=["*"])) is None


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [("http://localhost:3000", True), ("https://files.example.com", True),
     ("http://127.0.0.1:6274", True), ("http://evil.example.com", False), ("null", False),
     ("file://", False), ("http://localhost:notaport", False)],
)  # fmt: skip
def test_origin_must_name_an_allowed_host(origin: str, allowed: bool) -> None:
    refused = check_host_and_origin("localhost:9000", origin, _settings())
    assert (refused is None) is allowed
    if refused is not None:
        assert refused.status == 403


def test_allowed_origins_are_matched_exactly() -> None:
    settings = _settings(allowedOrigins=["https://app.example.org"])
    assert check_host_and_origin("localhost", "https://app.example.org/", settings) is None
    assert check_host_and_origin("localhost", "https://app.example.org:8443", settings)


# -- 2026-07-28 answers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method",
    ["initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"],
)
def test_methods_removed_in_2026_07_28_are_404_there_and_pass_before(method: str) -> None:
    message = _message(method)
    with pytest.raises(ProtocolError) as caught:
        check_removed(message, "2026-07-28")
    assert (caught.value.status, caught.value.code) == (404, -32601)
    check_removed(message, "2025-11-25")
    check_removed(message, None)


def test_an_unknown_method_denial_is_404_only_in_2026_07_28() -> None:
    error = {"code": -32601, "message": "method 'x' is not allowed"}
    assert denial_status("2026-07-28", error, 200) == 404
    assert denial_status("2025-11-25", error, 200) == 200
    assert denial_status("2026-07-28", {"code": -32003, "message": "denied"}, 200) == 200


def test_optional_whitespace_around_routing_header_values_is_not_part_of_them() -> None:
    message = classify(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
         "params": {"name": "read_file", "arguments": {}, "_meta": MODERN_META}}
    )  # fmt: skip
    headers = [("mcp-protocol-version", " 2026-07-28"), ("mcp-method", "\ttools/call "),
               ("mcp-name", "  read_file  ")]  # fmt: skip
    check_routing_headers(message, headers)
    with pytest.raises(ProtocolError):
        check_routing_headers(message, [*headers[:2], ("mcp-name", " read _file ")])


# -- caching -----------------------------------------------------------------------------------


def test_per_caller_results_are_private_to_caches_in_2026_07_28() -> None:
    listed = {"jsonrpc": "2.0", "id": 1, "result": {"tools": [], "cacheScope": "public"}}
    out = mark_private("tools/list", {"_meta": MODERN_META}, listed)
    assert out["result"]["cacheScope"] == "private"
    hinted = {"jsonrpc": "2.0", "id": 1, "result": {"contents": [], "ttlMs": 5000}}
    out = mark_private("resources/read", {}, hinted)
    assert out["result"] == {"contents": [], "ttlMs": 5000, "cacheScope": "private"}


def test_older_revisions_and_other_methods_are_left_alone() -> None:
    legacy = {"jsonrpc": "2.0", "id": 1, "result": {"tools": []}}
    assert mark_private("tools/list", {}, legacy) is legacy
    called = {"jsonrpc": "2.0", "id": 1, "result": {"content": [], "cacheScope": "public"}}
    assert mark_private("tools/call", {"_meta": MODERN_META}, called) is called


# -- which upstream 4xx bodies are relayed -----------------------------------------------


def _calls(id_: int = 7) -> dict[Any, Call]:
    return {id_: Call(_message("resources/read", id_, uri="x"), None)}


def test_a_2026_json_rpc_error_answering_the_call_is_relayed() -> None:
    body = b'{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"nf","data":{"uri":"x"}}}'
    assert rejection_answers(400, "json", body, _calls(), DEFAULT_LIMITS)
    missing = b'{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"Method not found"}}'
    assert rejection_answers(404, "json", missing, _calls(), DEFAULT_LIMITS)


@pytest.mark.parametrize(
    ("status", "kind", "body"),
    [(500, "json", b'{"jsonrpc":"2.0","id":7,"error":{"code":-32603,"message":"x"}}'),
     (401, "json", b'{"jsonrpc":"2.0","id":7,"error":{"code":-32001,"message":"x"}}'),
     (404, "json", b'{"jsonrpc":"2.0","id":7,"error":{"code":-32001,"message":"gone"}}'),
     (422, "json", b'{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"x"}}'),
     (400, "sse", b'{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"x"}}'),
     (400, "json", b'{"jsonrpc":"2.0","id":8,"error":{"code":-32602,"message":"x"}}'),
     (400, "json", b'{"jsonrpc":"2.0","id":7,"result":{}}'),
     (400, "json", b"<html>Bad Request</html>"),
     (400, "json", b'{"jsonrpc":"2.0","id":7,"error":{"code":"x","message":"x"}}')],
)  # fmt: skip
def test_other_non_2xx_answers_stay_the_gateway_s_own_error(
    status: int, kind: str, body: bytes
) -> None:
    assert not rejection_answers(status, kind, body, _calls(), DEFAULT_LIMITS)
