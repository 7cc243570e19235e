"""What a caller may receive from the server besides responses: sealed event ids, SSE id
rewriting with every line ending, and the judgement of server notifications and requests."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from remit.api.loader import load
from remit.gateway.events import EventIds
from remit.gateway.notices import ProgressTokens, judge, progress_token
from remit.gateway.sse import SseParser, encode_event
from remit.policy.compiler import compile_bundle
from remit.policy.engine import Engine
from remit.policy.request import Identity
from tests.support import stack

ALICE = Identity(subject="alice@example.com", agent="support-bot", issuer="https://idp")
MALLORY = Identity(subject="mallory@example.com", agent="support-bot", issuer="https://idp")


def test_a_sealed_id_opens_only_for_its_caller() -> None:
    ids = EventIds(b"k" * 32)
    sealed = ids.seal(ALICE, "stream-1:7")
    assert sealed.endswith(".stream-1:7")
    assert sealed != "stream-1:7"
    assert ids.open(ALICE, sealed) == "stream-1:7"
    assert ids.open(MALLORY, sealed) is None
    other_agent = Identity(subject=ALICE.subject, agent="other", issuer=ALICE.issuer)
    assert ids.open(other_agent, sealed) is None


@pytest.mark.parametrize(
    "presented",
    ["stream-1:7", "", ".stream-1:7", "x" * 22 + ".stream-1:7", "é" * 22 + ".x", "a.b.c"],
)
def test_raw_edited_or_invented_ids_do_not_open(presented: str) -> None:
    ids = EventIds(b"k" * 32)
    assert ids.open(ALICE, presented) is None
    sealed = ids.seal(ALICE, "stream-1:7")
    assert ids.open(ALICE, sealed[:-1] + "8") is None


def test_another_process_key_does_not_open_an_id() -> None:
    assert EventIds().open(ALICE, EventIds().seal(ALICE, "s:1")) is None


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_sse_ids_are_read_and_replaced_with_every_line_ending(newline: bytes) -> None:
    raw = newline.join([b"event: message", b"id: s:1", b"data: {}", b"id:s:2", b"", b""])
    (event,) = SseParser().feed(raw)
    assert event.id == "s:2"  # the last id field wins
    sealed = replace(event, id="sealed")
    assert SseParser().feed(encode_event(sealed, event.data)) == [sealed]


def test_an_id_with_null_is_ignored_and_events_without_ids_have_none() -> None:
    assert SseParser().feed(b"id: a\0b\ndata: x\n\n")[0].id is None
    assert SseParser().feed(b"data: x\n\n")[0].id is None
    assert SseParser().feed(b"identity: x\ndata: x\n\n")[0].id is None


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    directory = tmp_path_factory.mktemp("policy")
    stack.write_policy_dir(directory, stack.server_yaml("https://idp", "http://x/mcp"))
    return Engine(compile_bundle(load([Path(directory)]).resources, "files"))


def progress(token: object) -> dict[str, object]:
    params = {"progressToken": token, "progress": 1}
    return {"jsonrpc": "2.0", "method": "notifications/progress", "params": params}


def test_progress_reaches_only_the_caller_whose_request_carries_the_token(engine: Engine) -> None:
    tokens = ProgressTokens()
    key = progress_token({"_meta": {"progressToken": "p1"}})
    assert key is not None
    tokens.remember(ALICE, key)
    assert judge(progress("p1"), ALICE, engine, tokens) is None
    assert judge(progress("p1"), MALLORY, engine, tokens) == "progress_not_theirs"
    assert judge(progress(1), ALICE, engine, tokens) == "progress_not_theirs"  # 1 is not "p1"
    tokens.forget(ALICE, key)
    assert judge(progress("p1"), ALICE, engine, tokens) == "progress_not_theirs"


def test_resource_updates_reach_only_callers_who_may_read_the_resource(engine: Engine) -> None:
    def updated(uri: str) -> dict[str, object]:
        params = {"uri": uri}
        return {"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": params}

    tokens = ProgressTokens()
    assert judge(updated("files://readme"), ALICE, engine, tokens) is None
    assert judge(updated("files://secrets"), ALICE, engine, tokens) == "resource_not_readable"
    stranger = Identity(subject="eve@evil.example", agent="other-bot", issuer="https://idp")
    assert judge(updated("files://readme"), stranger, engine, tokens) == "resource_not_readable"


def test_protocol_messages_pass_and_unknown_methods_are_dropped(engine: Engine) -> None:
    tokens = ProgressTokens()
    for method in ("notifications/tools/list_changed", "notifications/message", "roots/list"):
        assert judge({"method": method}, ALICE, engine, tokens) is None
    assert judge({"method": "x/exfiltrate"}, ALICE, engine, tokens) == "unknown_method"
    assert judge({"method": "ping"}, ALICE, None, tokens) == "no_bundle"


def test_progress_token_keys_keep_json_types_apart() -> None:
    assert progress_token({"_meta": {"progressToken": 1}}) == "1"
    assert progress_token({"_meta": {"progressToken": "1"}}) == '"1"'
    assert progress_token({"_meta": {"progressToken": True}}) is None
    assert progress_token({}) is None
