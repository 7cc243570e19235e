"""A sidecar-mode gateway (``--public-key``, ``REMIT_SERVER``) and its admin API: not ready and
denying every MCP request until a signed bundle is pushed; then rollback, foreign-key and
tampered pushes are refused, and /v1/status and /metrics report what is in force."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from remit.api.loader import load
from remit.demo.issuer import Issuer
from remit.policy.bundle import CompiledGrant
from remit.policy.compiler import compile_bundle
from remit.policy.delta import build_delta
from remit.policy.signing import generate_key, save_key, sign, sign_delta
from tests.dataplane.compat.support import sign_json
from tests.dataplane.e2e_gateway.conftest import ALICE, BOT
from tests.support import mcp_wire, stack
from tests.support.stack import GatewayProcess, Upstream, metric_value

SERIAL = 10


@dataclass
class Sidecar:
    gateway: GatewayProcess
    token: str
    policy: Path
    key: Any
    before: dict[str, httpx.Response]


def _signed(policy: Path, key: Any, serial: int) -> str:
    loaded = load([policy])
    assert not loaded.errors
    return sign(compile_bundle(loaded.resources, "files", namespace="agents", serial=serial), key)


def _put(sidecar: Sidecar, body: str) -> httpx.Response:
    return httpx.put(f"{sidecar.gateway.admin}/v1/bundle", content=body, timeout=30)


@pytest.fixture(scope="module")
def sidecar(logs: Path, issuer: Issuer, upstream: Upstream) -> Iterator[Sidecar]:
    """A sidecar with no bundle; what it answered before any push is kept in ``before``."""
    key = generate_key()
    public = logs / "bundle-key.pub.json"
    save_key(key, public, private=False)
    ports = stack.reserve_gateway_ports()
    audience = stack.audience_for(ports[0])
    policy = stack.write_policy_dir(
        logs / "sidecar-policy", stack.server_yaml(issuer.issuer, audience)
    )
    token = issuer.mint(ALICE, agent=BOT, audience=audience, scopes=["mcp:tools"])
    with stack.gateway(
        logs,
        upstream_url=upstream.url,
        ports=ports,
        public_key=public,
        audit_file=logs / "sidecar-audit.jsonl",
        # Interval 0: each refusal without a bundle gets its own record (tests/security
        # covers their aggregation).
        env={
            "REMIT_SERVER": "agents/files",
            "REMIT_POD_NAME": "files-0",
            "REMIT_REFUSAL_INTERVAL": "0",
        },
    ) as gateway:
        forwarded = upstream.count()
        read = {"path": "/data/alice/notes.txt"}
        before = {
            "readyz": httpx.get(f"{gateway.admin}/readyz"),
            "healthz": httpx.get(f"{gateway.admin}/healthz"),
            "call": mcp_wire.tool_call(gateway.url, "read_file", read, token=token),
            "anonymous": mcp_wire.tool_call(gateway.url, "read_file", read),
            "metadata": httpx.get(f"{gateway.base}/.well-known/oauth-protected-resource/mcp"),
        }
        assert upstream.count() == forwarded, "a request reached the MCP server before a bundle"
        yield Sidecar(gateway, token, policy, key, before)


@pytest.fixture(scope="module")
def pushed(sidecar: Sidecar) -> dict[str, Any]:
    """Push the first bundle (serial 10); its answer."""
    answer = _put(sidecar, _signed(sidecar.policy, sidecar.key, SERIAL))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_without_a_bundle_the_sidecar_is_not_ready_and_denies(sidecar: Sidecar) -> None:
    before = sidecar.before
    assert before["healthz"].status_code == 200
    assert before["readyz"].status_code == 503
    assert before["readyz"].json() == {"ready": False, "reasons": ["no policy bundle in force"]}
    for name in ("call", "anonymous"):
        assert before[name].status_code == 503
        assert before[name].json()["error"]["data"]["reason"] == "no_bundle"
    assert before["metadata"].status_code == 503
    records = [r for r in sidecar.gateway.records() if r.get("reason") == "no_bundle"]
    assert len(records) >= 2
    assert {r["server"] for r in records} == {"agents/files"}
    assert {r["pod"] for r in records} == {"files-0"}


def test_push_installs_the_bundle_and_the_sidecar_serves(
    sidecar: Sidecar, pushed: dict[str, Any]
) -> None:
    assert pushed["serial"] == SERIAL
    assert len(pushed["digest"]) == 64
    assert httpx.get(f"{sidecar.gateway.admin}/readyz").status_code == 200
    answer = mcp_wire.tool_call(
        sidecar.gateway.url, "read_file", {"path": "/data/alice/notes.txt"}, token=sidecar.token
    )
    assert answer.status_code == 200
    assert answer.json()["result"]["content"][0]["text"] == "alice's notes\n"
    same = _put(sidecar, _signed(sidecar.policy, sidecar.key, SERIAL))
    assert same.status_code == 200
    assert same.json() == {**pushed, "changed": False}


@pytest.mark.usefixtures("pushed")
def test_a_lower_serial_is_refused_as_a_rollback(sidecar: Sidecar) -> None:
    answer = _put(sidecar, _signed(sidecar.policy, sidecar.key, SERIAL - 5))
    assert answer.status_code == 409
    assert "not newer" in answer.json()["error"]


@pytest.mark.usefixtures("pushed")
def test_a_bundle_signed_with_another_key_is_refused(sidecar: Sidecar) -> None:
    answer = _put(sidecar, _signed(sidecar.policy, generate_key(), SERIAL + 1))
    assert answer.status_code == 400
    assert answer.json()["error"]


@pytest.mark.usefixtures("pushed")
def test_a_tampered_bundle_is_refused(sidecar: Sidecar) -> None:
    header, payload, signature = _signed(sidecar.policy, sidecar.key, SERIAL + 2).split(".")
    flipped = payload[:40] + ("A" if payload[40] != "A" else "B") + payload[41:]
    answer = _put(sidecar, f"{header}.{flipped}.{signature}")
    assert answer.status_code == 400
    garbage = _put(sidecar, "not a jws")
    assert garbage.status_code == 400


def test_status_reports_digest_serial_pins_and_audit_head(
    sidecar: Sidecar, pushed: dict[str, Any]
) -> None:
    listed = mcp_wire.call(sidecar.gateway.url, "tools/list", {}, token=sidecar.token)
    assert listed.status_code == 200
    status = httpx.get(f"{sidecar.gateway.admin}/v1/status").json()
    assert status["ready"] is True
    assert status["bundle"]["digest"] == pushed["digest"]
    assert status["bundle"]["serial"] == SERIAL
    assert status["bundle"]["server"] == "agents/files"
    assert {"read_file", "write_file", "delete_file"} <= set(status["pins"])
    assert all(len(h) == 64 for h in status["pins"].values())
    hashes = {r["hash"] for r in sidecar.gateway.records()}
    assert status["audit"]["head"] in hashes


@pytest.mark.usefixtures("pushed")
def test_metrics_count_decisions_by_reason_and_bundle_pushes(sidecar: Sidecar) -> None:
    mcp_wire.tool_call(sidecar.gateway.url, "read_file", {"path": "/data/x"}, token=sidecar.token)
    mcp_wire.tool_call(
        sidecar.gateway.url,
        "write_file",
        {"path": "/data/bob/x", "content": ""},
        token=sidecar.token,
    )
    text = sidecar.gateway.metrics()
    decisions = "remit_decisions_total"
    assert metric_value(text, decisions, effect="allow", reason="allowed") >= 1
    assert metric_value(text, decisions, effect="deny", reason="no_bundle") >= 2
    assert metric_value(text, decisions, effect="deny", reason="consent_required") >= 1
    assert metric_value(text, "remit_bundle_serial") == SERIAL
    assert metric_value(text, "remit_bundle_installs_total", result="installed") == 1


@pytest.mark.usefixtures("pushed")
def test_deltas_for_another_base_or_digest_are_refused_with_reasons(sidecar: Sidecar) -> None:
    loaded = load([sidecar.policy])
    base = compile_bundle(loaded.resources, "files", namespace="agents", serial=SERIAL)
    grant = CompiledGrant(
        id="agents/forged",
        subject=ALICE,
        agent=BOT,
        tools=("*",),
        expires_at=datetime.now(UTC) + timedelta(days=1),
        granted_by=ALICE,
    )
    target = msgspec.structs.replace(base, serial=SERIAL + 3, grants=(*base.grants, grant))
    delta = build_delta(base, target.sealed())
    assert delta is not None
    status = httpx.get(f"{sidecar.gateway.admin}/v1/status").json()
    assert status["bundleDelta"] is True

    def patch(body: str) -> httpx.Response:
        return httpx.patch(f"{sidecar.gateway.admin}/v1/bundle", content=body, timeout=30)

    other_base = msgspec.structs.replace(delta, base_serial=SERIAL - 1)
    answer = patch(sign_delta(other_base, sidecar.key))
    assert (answer.status_code, answer.json()["reason"]) == (409, "delta_base")
    forged = msgspec.structs.replace(delta, digest=base.digest)  # signed, but not the result
    answer = patch(sign_delta(forged, sidecar.key))
    assert (answer.status_code, answer.json()["reason"]) == (422, "delta_digest")
    after = httpx.get(f"{sidecar.gateway.admin}/v1/status").json()
    assert after["bundle"] == status["bundle"]  # the bundle in force stayed
    assert after["bundleRefusals"]["counts"]["delta_base"] == 1
    assert after["bundleRefusals"]["counts"]["delta_digest"] == 1
    text = sidecar.gateway.metrics()
    assert metric_value(text, "remit_bundle_refusals_total", reason="delta_digest") == 1


@pytest.mark.usefixtures("pushed")
def test_a_bundle_using_a_field_this_sidecar_does_not_know_is_refused_as_unsupported(
    sidecar: Sidecar,
) -> None:
    # What a newer operator sends for a feature this sidecar predates: refused, never ignored.
    loaded = load([sidecar.policy])
    bundle = compile_bundle(loaded.resources, "files", namespace="agents", serial=SERIAL + 4)
    document = msgspec.json.decode(bundle.canonical())
    document["server"]["maxToolCallsPerMinute"] = 5
    before = httpx.get(f"{sidecar.gateway.admin}/v1/status").json()
    assert isinstance(before["bundleFields"], list)  # the later fields it knows (none yet)
    answer = _put(sidecar, sign_json(document, sidecar.key))
    assert (answer.status_code, answer.json()["reason"]) == (422, "unsupported")
    assert "`server.maxToolCallsPerMinute`" in answer.json()["error"]
    after = httpx.get(f"{sidecar.gateway.admin}/v1/status").json()
    assert after["bundle"] == before["bundle"]  # the bundle in force stayed
    assert after["bundleRefusals"]["last"]["reason"] == "unsupported"
    text = sidecar.gateway.metrics()
    assert metric_value(text, "remit_bundle_refusals_total", reason="unsupported") == 1
