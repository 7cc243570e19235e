"""JSON-RPC and MCP Streamable HTTP rules the gateway enforces before anything is forwarded.

Parses a POST body (one message or a batch) into classified messages, checks the 2026-07-28
routing headers (``Mcp-Method``, ``Mcp-Name``, ``Mcp-Param-*``, ``MCP-Protocol-Version``)
against the body — the body is authoritative, a disagreeing header is rejected with -32020 —
and builds the JSON-RPC error bodies the gateway answers with. Pure functions, no I/O.
Nesting is bounded (``max_depth``, default 64): a deeper body is refused before any part of
the gateway walks it. ``server_message_kind`` classifies what an upstream sends, strictly.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from remit.errors import JsonDepthError, JsonKeyCollisionError, ProtocolError
from remit.gateway.bounds import DEFAULT_MAX_JSON_DEPTH, loads
from remit.gateway.references import reference
from remit.policy.decision import Reason

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
INTERNAL_ERROR: Final = -32603
HEADER_MISMATCH: Final = -32020
_MISMATCH_REASON: Final = Reason.HEADER_MISMATCH
UPSTREAM_ERROR: Final = -32000
SESSION_NOT_FOUND: Final = -32001

MODERN_VERSIONS: Final = frozenset({"2026-07-28"})
PROTOCOL_VERSION_META: Final = "io.modelcontextprotocol/protocolVersion"
NAME_PARAM: Final[Mapping[str, str]] = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
}
"""Methods whose target is mirrored in ``Mcp-Name``, and the params key it mirrors."""

VERSION_HEADER: Final = "mcp-protocol-version"
METHOD_HEADER: Final = "mcp-method"
NAME_HEADER: Final = "mcp-name"
PARAM_HEADER_PREFIX: Final = "mcp-param-"
SESSION_HEADER: Final = "mcp-session-id"
_ROUTING_HEADERS: Final = frozenset({VERSION_HEADER, METHOD_HEADER, NAME_HEADER})

OWS: Final = " \t"
_B64: Final = re.compile(r"^=\?base64\?(?P<payload>.*)\?=$")
_DECIMAL: Final = re.compile(r"^-?[0-9]+(\.0+)?$")

RequestId = str | int


CLIENT_NOTIFICATIONS: Final[Mapping[str, frozenset[str]]] = {
    "2025-06-18": frozenset(
        {
            "notifications/cancelled",
            "notifications/initialized",
            "notifications/progress",
            "notifications/roots/list_changed",
        }
    ),
    "2025-11-25": frozenset(
        {
            "notifications/cancelled",
            "notifications/initialized",
            "notifications/progress",
            "notifications/roots/list_changed",
            "notifications/tasks/status",
        }
    ),
    "2026-07-28": frozenset({"notifications/cancelled"}),
}
"""The notifications a client may send, per revision (each revision's ``ClientNotification``)."""
ANY_CLIENT_NOTIFICATION: Final = frozenset().union(*CLIENT_NOTIFICATIONS.values())


def is_client_notification(method: str, version: str | None) -> bool:
    """Whether ``method`` is a notification the protocol lets a client send in ``version``.

    Only these pass without a decision: any other message without an ``id`` (``tools/call``
    sent as a notification, an invented ``notifications/x``) is decided and recorded like a
    request, since JSON-RPC servers act on notifications too. An unknown or absent version
    (older revisions, the ``initialize`` exchange) gets the union of every revision's set.
    """
    allowed = CLIENT_NOTIFICATIONS.get(version or "", ANY_CLIENT_NOTIFICATION)
    return method in allowed


@dataclass(frozen=True, slots=True)
class Message:
    """One JSON-RPC message from a POST body.

    ``kind`` is ``request`` (method and id), ``notification`` (method, no id) or ``response``
    (id with result or error: the client's answer to a server-initiated request).
    """

    kind: str
    raw: Mapping[str, Any]
    method: str = ""
    id: RequestId | None = None

    @property
    def params(self) -> Mapping[str, Any]:
        """The message's params (empty when absent)."""
        params = self.raw.get("params")
        return params if isinstance(params, dict) else {}

    @property
    def target(self) -> str:
        """The tool name, prompt name or resource URI the request names (for
        ``completion/complete``, what its ``ref`` names); empty otherwise."""
        return reference(self.method, self.params)[0]


@dataclass(frozen=True, slots=True)
class Body:
    """A parsed POST body: its messages in order and whether it was a JSON array."""

    messages: tuple[Message, ...]
    batch: bool


DEFAULT_MAX_BATCH: Final = 32


def parse_body(
    data: bytes, max_batch: int = DEFAULT_MAX_BATCH, *, max_depth: int = DEFAULT_MAX_JSON_DEPTH
) -> Body:
    """Parse and classify a POST body; raise ProtocolError (-32700 / -32600) if it is unusable.

    A batch holds at most ``max_batch`` messages and no request id twice: both are checked
    before anything in it is decided, so a refused batch leaves no allow records behind.
    Nothing nested deeper than ``max_depth`` is accepted.
    """
    try:
        value = loads(data, max_depth)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(PARSE_ERROR, f"Parse error: body is not valid JSON ({exc})") from exc
    except JsonDepthError as exc:
        raise ProtocolError(
            INVALID_REQUEST, f"Invalid Request: {exc} (the gateway's limit)", status=400
        ) from exc
    except JsonKeyCollisionError as exc:
        raise ProtocolError(INVALID_REQUEST, f"Invalid Request: {exc}", status=400) from exc
    if not isinstance(value, list):
        return Body((classify(value),), batch=False)
    if not value:
        raise ProtocolError(INVALID_REQUEST, "Invalid Request: empty batch")
    if len(value) > max_batch:
        raise ProtocolError(
            INVALID_REQUEST,
            f"Invalid Request: batch of {len(value)} messages exceeds the limit of {max_batch}",
            reason=Reason.BATCH_TOO_LARGE,
        )
    messages = tuple(classify(item) for item in value)
    seen: set[tuple[type, RequestId]] = set()
    for message in messages:
        if message.kind != "request" or message.id is None:
            continue
        key = (type(message.id), message.id)
        if key in seen:
            raise ProtocolError(
                INVALID_REQUEST,
                f"Invalid Request: request id {message.id!r} appears twice in the batch",
                id_=message.id,
                reason=Reason.BATCH_REJECTED,
            )
        seen.add(key)
    return Body(messages, batch=True)


def classify(value: Any) -> Message:
    """Classify one decoded JSON-RPC message; raise ProtocolError (-32600) if malformed."""
    if not isinstance(value, dict):
        raise ProtocolError(INVALID_REQUEST, "Invalid Request: a message must be a JSON object")
    id_ = value.get("id")
    if value.get("jsonrpc") != "2.0":
        raise ProtocolError(
            INVALID_REQUEST, 'Invalid Request: "jsonrpc" must be "2.0"', id_=_id(id_)
        )
    if "id" in value and not _valid_id(id_):
        raise ProtocolError(INVALID_REQUEST, "Invalid Request: id must be a string or integer")
    if "params" in value and not isinstance(value["params"], dict):
        raise ProtocolError(INVALID_REQUEST, "Invalid Request: params must be an object", id_=id_)
    if "method" in value:  # present: a request or notification, whatever its value
        method = value["method"]
        if not isinstance(method, str) or not method:
            raise ProtocolError(
                INVALID_REQUEST, "Invalid Request: method must be a non-empty string", id_=_id(id_)
            )
        if "result" in value or "error" in value:
            raise ProtocolError(
                INVALID_REQUEST,
                "Invalid Request: a message cannot carry both a method and a result or error",
                id_=_id(id_),
            )
        if "id" in value:
            return Message("request", value, method, id_)
        return Message("notification", value, method)
    if "id" in value and ("result" in value) != ("error" in value):
        return Message("response", value, "", id_)
    raise ProtocolError(
        INVALID_REQUEST, "Invalid Request: neither a request nor a response", id_=id_
    )


def _valid_id(id_: Any) -> bool:
    return isinstance(id_, str) or (isinstance(id_, int) and not isinstance(id_, bool))


def _id(id_: Any) -> RequestId | None:
    return id_ if _valid_id(id_) else None


def check_routing_headers(
    message: Message, headers: Iterable[tuple[str, str]], *, in_batch: bool = False
) -> None:
    """Reject (-32020) routing headers that disagree with ``message``; the body is authoritative.

    ``headers`` are (lowercase name, value) pairs. On a 2026-07-28 request ``Mcp-Method`` is
    required and ``Mcp-Name`` must be present for methods that name a target; on older
    revisions those headers are optional but still must agree when sent. Each ``Mcp-Param-*``
    value must equal some scalar argument of the call (the tool's schema, which maps header to
    argument, is checked again by the upstream server).
    """
    seen: dict[str, str] = {}
    params: list[tuple[str, str]] = []
    for name, raw in headers:
        # RFC 9110 §5.5: optional whitespace is not part of the value
        if name in _ROUTING_HEADERS:
            if name in seen:
                raise _mismatch(message, f"{name} header appears more than once")
            seen[name] = raw.strip(OWS)
        elif name.startswith(PARAM_HEADER_PREFIX):
            params.append((name, raw.strip(OWS)))
    version = seen.get(VERSION_HEADER)
    modern = version in MODERN_VERSIONS and not in_batch
    body = message.params
    meta = body.get("_meta")
    body_version = meta.get(PROTOCOL_VERSION_META) if isinstance(meta, dict) else None
    if version in MODERN_VERSIONS and body_version is not None and body_version != version:
        raise _mismatch(message, f"{VERSION_HEADER} header does not match the body's version")
    method = seen.get(METHOD_HEADER)
    if (modern or method is not None) and method != message.method:
        raise _mismatch(message, f"{METHOD_HEADER} header does not match the body's method")
    key = NAME_PARAM.get(message.method)
    name_header = seen.get(NAME_HEADER)
    if key is not None and (modern or name_header is not None):
        body_name = body.get(key)
        if body_name is not None and decode_header_value(name_header) != body_name:
            raise _mismatch(message, f"{NAME_HEADER} header does not match the body's {key!r}")
    elif name_header is not None:
        raise _mismatch(message, f"{NAME_HEADER} header sent for a method that names nothing")
    if params:
        _check_param_headers(message, params)


def check_response_headers(body: Body, headers: Iterable[tuple[str, str]]) -> None:
    """Reject (-32020) routing headers on a body of responses only: they name a method and a
    target the body does not carry, and an upstream that routes on them would act on a lie."""
    if not body.messages or any(m.kind != "response" for m in body.messages):
        return
    for name, _value in headers:
        if name in (METHOD_HEADER, NAME_HEADER) or name.startswith(PARAM_HEADER_PREFIX):
            text = f"Header mismatch: {name} header sent on a body of responses"
            raise ProtocolError(HEADER_MISMATCH, text, reason=_MISMATCH_REASON)


def _check_param_headers(message: Message, params: list[tuple[str, str]]) -> None:
    arguments = message.params.get("arguments")
    if message.method != "tools/call" or not isinstance(arguments, dict):
        raise _mismatch(message, "Mcp-Param-* headers sent without tool arguments")
    rendered = set(_scalars(arguments))
    names: set[str] = set()
    for name, raw in params:
        if name in names:
            raise _mismatch(message, f"{name} header appears more than once")
        names.add(name)
        value = decode_header_value(raw)
        if value is None:
            raise _mismatch(message, f"{name} header carries a malformed base64 value")
        if value not in rendered and not (
            _DECIMAL.match(value) and value.split(".")[0] in rendered
        ):
            raise _mismatch(message, f"{name} header matches no argument in the body")


def _scalars(root: Any) -> Iterable[str]:
    """Every scalar argument value, rendered the way a client mirrors it into a header
    (walked without recursion: depth is bounded at parse time, and this must not rely on it)."""
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, bool):
            yield "true" if node else "false"
        elif isinstance(node, float) and node.is_integer():
            yield str(node)
            yield str(int(node))
        elif isinstance(node, str | int | float):
            yield str(node)


def decode_header_value(value: str | None) -> str | None:
    """Undo the ``=?base64?...?=`` wrapping MCP uses for non-ASCII header values."""
    if value is None or not value.startswith("=?"):  # what _B64 needs to match
        return value
    match = _B64.match(value)
    if match is None:
        return value
    try:
        return base64.b64decode(match.group("payload"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):  # ValueError: non-ASCII payload
        return None


def _mismatch(message: Message, text: str) -> ProtocolError:
    return ProtocolError(
        HEADER_MISMATCH, f"Header mismatch: {text}", id_=message.id, reason=_MISMATCH_REASON
    )


def error_object(code: int, message: str, data: Any = None) -> dict[str, Any]:
    """A JSON-RPC error object."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return error


def error_response(id_: RequestId | None, error: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-RPC error response message."""
    return {"jsonrpc": "2.0", "id": id_, "error": dict(error)}


def result_response(id_: RequestId | None, result: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-RPC result response message."""
    return {"jsonrpc": "2.0", "id": id_, "result": dict(result)}


def error_body(id_: RequestId | None, code: int, message: str, data: Any = None) -> bytes:
    """A serialised JSON-RPC error response."""
    return orjson.dumps(error_response(id_, error_object(code, message, data)))


def server_message_kind(value: Any) -> str | None:
    """``request``, ``notification`` or ``response`` for a well-formed JSON-RPC message from
    the server; None for anything else (a client may read an ambiguous message either way,
    so the gateway forwards none: e.g. an object with both ``method`` and ``result``)."""
    if not isinstance(value, dict) or value.get("jsonrpc") != "2.0":
        return None
    has_id = "id" in value
    if "method" in value:
        if not isinstance(value["method"], str) or "result" in value or "error" in value:
            return None
        if "params" in value and not isinstance(value["params"], dict | list):
            return None
        if not has_id:
            return "notification"
        return "request" if _valid_id(value["id"]) else None
    if not has_id or ("result" in value) == ("error" in value):
        return None
    id_ = value["id"]
    if "error" in value:
        error = value["error"]
        code = error.get("code") if isinstance(error, dict) else None
        if not isinstance(code, int) or isinstance(code, bool):
            return None
        return "response" if id_ is None or _valid_id(id_) else None
    return "response" if _valid_id(id_) else None
