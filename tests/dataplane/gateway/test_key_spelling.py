"""What the gateway decides on is exactly what the upstream and the client receive.

Decoders disagree on JSON objects whose keys differ only in case (Go's ``encoding/json`` folds
case and keeps the last), and on literal duplicate keys (some keep the first): the gateway
refuses the first in both directions and forwards its own encoding of what it parsed, never
the client's bytes. An upstream error that names no request reaches the client as the
gateway's own error, without the upstream's message or data.
"""

from __future__ import annotations

import orjson
import pytest

from remit.errors import JsonDepthError, JsonKeyCollisionError
from remit.gateway.bounds import colliding_key, loads
from remit.gateway.exchange import _own_error
from remit.gateway.protocol import parse_body
from remit.gateway.proxy import _encoded


@pytest.mark.parametrize(
    ("document", "key"),
    [
        ({"name": "a", "Name": "b"}, "Name"),
        ({"params": {"arguments": {"path": "/a", "PATH": "/b"}}}, "PATH"),
        ([{"ok": 1}, {"result": {"tools": [], "Tools": []}}], "Tools"),
        ({"kind": "a", "\u212aind": "b"}, "\u212aind"),  # the Kelvin sign folds to k, as in Go
        ({"name": "a", "names": "b", "nom": {"Name": 1}}, None),
    ],
)
def test_keys_that_differ_only_in_case_are_found_at_any_depth(
    document: object, key: str | None
) -> None:
    assert colliding_key(document) == key
    if key is not None:
        with pytest.raises(JsonKeyCollisionError):
            loads(orjson.dumps(document), 64)


def test_one_walk_names_the_same_key_and_depth_still_wins() -> None:
    # loads checks depth and case collisions in one walk: the key named is colliding_key's,
    # and a body both too deep and colliding is refused for its depth, as with two walks.
    many = {"a": {"x": 1, "X": 2}, "b": [{"y": 1, "Y": 2}], "c": {"z": {"q": 1, "Q": 2}}}
    with pytest.raises(JsonKeyCollisionError) as raised:
        loads(orjson.dumps(many), 64)
    assert raised.value.args == JsonKeyCollisionError(str(colliding_key(many))).args
    deep: object = {"k": 1, "K": 2}
    for _ in range(10):
        deep = {"n": [deep]}
    with pytest.raises(JsonDepthError):
        loads(orjson.dumps(deep), 8)
    with pytest.raises(JsonKeyCollisionError):
        loads(orjson.dumps(deep), 64)
    assert loads(b'[[], {}, "A", {"a": [1]}]', 3) == [[], {}, "A", {"a": [1]}]
    with pytest.raises(JsonDepthError):
        loads(b'[[], {}, "A", {"a": [[1]]}]', 3)


def test_the_upstream_receives_the_gateways_encoding_not_the_clients_bytes() -> None:
    raw = (
        b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call",'
        b' "params": {"name": "delete_file", "name": "read_file"}}'
    )
    parsed = parse_body(raw)
    assert parsed.messages[0].target == "read_file"  # the key the decision saw
    sent = _encoded(parsed)
    assert sent.count(b'"name"') == 1
    assert orjson.loads(sent)["params"]["name"] == "read_file"
    batch = parse_body(b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]')
    assert orjson.loads(_encoded(batch)) == [{"jsonrpc": "2.0", "id": 1, "method": "ping"}]


def test_an_upstream_error_naming_no_request_keeps_its_code_not_its_words() -> None:
    leaked = {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32600, "message": "db password hunter2", "data": {"tb": "SECRET"}},
    }
    own = _own_error(leaked)
    assert own["id"] is None
    assert own["error"]["code"] == -32600
    assert "hunter2" not in orjson.dumps(own).decode()
    assert "SECRET" not in orjson.dumps(own).decode()
    odd = _own_error({"jsonrpc": "2.0", "id": None, "error": {"code": 7, "message": "x"}})
    assert odd["error"]["code"] != 7
