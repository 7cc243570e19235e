"""Each sidecar's argument digest key comes from the operator, over the admin port, signed and
encrypted to that process; until it has one the sidecar refuses every call (kmock API server,
a real gateway process, real MCP calls and JWTs, records read back from its file sink)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any, cast

import httpx
import kmock
import msgspec

from remit.audit.anchors import digest_key
from remit.audit.arguments import key_id
from remit.audit.canonical import digest_json
from remit.audit.keydelivery import seal_key, server_key
from remit.demo.issuer import Issuer
from remit.policy.consentdelivery import Recipient
from remit.policy.signing import generate_key
from remit_operator.auditkeys import AuditRootKey, deliver_keys
from remit_operator.kube import KubeClient
from remit_operator.push import Pusher
from tests.operator.support import (
    AUDIENCE,
    NAMESPACE,
    OPERATOR_NAMESPACE,
    RunningOperator,
    Sidecar,
    apply,
    decide,
    eventually,
    fleet,
    operator_settings,
    stored,
)
from tests.support import mcp_wire
from tests.support.policies import policy, rule

WRITE = ("write_file", {"path": "/data/alice/notes.txt", "content": "hi"})
SECRETS = f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets"


async def _root(k8s: kmock.KubernetesEmulator, value: bytes, *, create: bool = False) -> None:
    """Write the root key Secret (as an administrator rotating it would)."""
    body = {"data": {"key": base64.b64encode(value).decode()}}
    if create:
        body |= {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "remit-audit-key"}}
        response = await k8s.post(SECRETS, json=body)
    else:
        response = await k8s.patch(
            f"{SECRETS}/remit-audit-key",
            json=body,
            headers={"Content-Type": "application/merge-patch+json"},
        )
    assert response.status < 300


async def _ready(sidecar: Sidecar) -> tuple[int, Any]:
    url = f"http://{sidecar.ip}:{sidecar.admin_port}/readyz"
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(url)
    return response.status_code, response.json()


async def _holds(sidecar: Sidecar) -> str | None:
    held: str | None = (await sidecar.status())["auditKey"]["holds"]
    return held


async def _holding(sidecar: Sidecar, want: str) -> bool:
    return await _holds(sidecar) == want


async def _put(sidecar: Sidecar, token: bytes) -> httpx.Response:
    url = f"http://{sidecar.ip}:{sidecar.admin_port}/v1/audit-key"
    async with httpx.AsyncClient(timeout=5) as http:
        return await http.put(url, content=token)


def _later(operator: RunningOperator, hours: int) -> None:
    """Move the root key's cache clock past its TTL (the Secret is read again)."""
    operator.runtime.audit_key.clock = lambda: time.monotonic() + hours * 3600


async def test_a_sidecar_refuses_calls_until_the_operator_delivers_its_key_and_follows_rotation(
    k8s: kmock.KubernetesEmulator,
    operator: RunningOperator,
    issuer: Issuer,
    upstream: str,
    tmp_path: Path,
) -> None:
    # A root key the operator cannot use: it pushes bundles but can deliver no digest key.
    await _root(k8s, b"too short", create=True)
    token = issuer.mint("alice@example.com", agent="support-bot", audience=AUDIENCE)
    args = (issuer.issuer, issuer.jwks_uri, upstream, 1, tmp_path)
    async with fleet(k8s, operator, *args, first_ip=90) as files:
        sidecar = files.sidecars[0]
        await apply(k8s, policy("support-bot", rule("w", tools=["write_file"])))
        await files.in_sync(previous=files.server_digest())
        # 1. Before its key: a bundle, yet not ready, and every call refused (fail closed).
        assert await _holds(sidecar) is None
        status, body = await _ready(sidecar)
        assert status == 503
        assert any("digest key has not been delivered" in r for r in body["reasons"])
        refused = await asyncio.to_thread(mcp_wire.tool_call, sidecar.url, *WRITE, token=token)
        assert refused.status_code == 503
        assert refused.json()["error"]["data"]["reason"] == "audit_unavailable"
        # 2. Only the operator's signature, to this process, for this server, is taken.
        recipient = (await sidecar.status())["auditKey"]["recipient"]
        assert "d" not in recipient
        signing = operator.runtime.keyring.active
        mine = b"m" * 64
        forged = seal_key(generate_key(), recipient, "agents/files", mine, time.time())
        elsewhere = seal_key(signing, Recipient().public(), "agents/files", mine, time.time())
        other = seal_key(signing, recipient, "agents/other", mine, time.time())
        for sealed, why in ((forged, "signature"), (elsewhere, "does not open"),
                            (other, "agents/other")):  # fmt: skip
            answer = await _put(sidecar, sealed)
            assert answer.status_code == 400, answer.text
            assert answer.json()["reason"] == "audit_key_delivery"
            assert why in answer.json()["error"]
        assert (await sidecar.status())["auditKey"] == {
            "recipient": recipient, "holds": None, "refused": 3
        }  # fmt: skip
        # 3. A usable root: the next pass delivers the server's key; calls go through.
        first = b"1" * 44
        await _root(k8s, first)
        _later(operator, 1)
        await apply(k8s, policy("other-bot", rule("r", tools=["read_file"])))  # a pass
        want = key_id(server_key(first, "agents/files"))
        await eventually(lambda: _holding(sidecar, want), timeout=10)
        assert (await _ready(sidecar))[0] == 200
        # 4. A restarted process (new recipient, no key) gets it again with its bundle.
        sidecar.env |= {"REMIT_AUDIT_SINK": "file", "REMIT_AUDIT_FILE": str(tmp_path / "a.log")}
        sidecar.restart()
        await files.update_pod(sidecar)
        await eventually(lambda: _holding(sidecar, want), timeout=10)
        assert await decide(sidecar.url, token, *WRITE) == "allowed"
        # Captured on the way (admin traffic is plain HTTP in the pod's network namespace).
        recipient = (await sidecar.status())["auditKey"]["recipient"]
        old_key = server_key(first, "agents/files")
        captured = seal_key(signing, recipient, "agents/files", old_key, time.time())
        # 5. Rotation: a new root reaches the sidecar; later records name the new key.
        second = b"2" * 44
        await _root(k8s, second)
        _later(operator, 2)
        await apply(k8s, policy("third-bot", rule("r", tools=["read_file"])))
        rotated = key_id(server_key(second, "agents/files"))
        await eventually(lambda: _holding(sidecar, rotated), timeout=10)
        assert await decide(sidecar.url, token, *WRITE) == "allowed"
        # 6. The pre-rotation delivery replayed (still fresh): refused, counted; the new key stays.
        refused = (await sidecar.status())["auditKey"]["refused"]
        replayed = await _put(sidecar, captured)
        assert replayed.status_code == 400, replayed.text
        assert "replay of an earlier delivery" in replayed.json()["error"]
        assert (await sidecar.status())["auditKey"]["refused"] == refused + 1
        assert await _holds(sidecar) == rotated
        # 7. A sidecar holding another key than the operator gave it (however it came to):
        # the periodic resync reads what it holds and delivers the right key again.
        recipient = (await sidecar.status())["auditKey"]["recipient"]
        wrong = seal_key(signing, recipient, "agents/files", b"w" * 64, time.time())
        assert (await _put(sidecar, wrong)).status_code == 200
        assert await _holds(sidecar) == key_id(b"w" * 64)
        rt, pusher = operator.runtime, Pusher(operator.settings)  # a client on this loop
        server = rt.index.servers["agents/files"]
        pods = [s for s in rt.index.sidecars("agents/files") if s.ip == sidecar.ip]
        believed = {p.pod: (p.incarnation, rotated) for p in pods}
        assert len(pods) == 1
        assert await deliver_keys(pusher, rt.keyring, server, second, pods, believed) == []
        assert await _holds(sidecar) == key_id(b"w" * 64)  # not a resync: trusted, not read
        assert await deliver_keys(
            pusher, rt.keyring, server, second, pods, believed, check_all=True
        ) == []  # fmt: skip
        assert await _holds(sidecar) == rotated
        await pusher.close()
        # Nothing in the server's namespace or the pod spec names a key.
        assert stored(k8s, "v1/secrets", NAMESPACE, "remit-audit-key") is None
        assert not [v for v in sidecar.pod["spec"]["volumes"] if "secret" in v]
        assert "remit-audit-key" not in json.dumps(sidecar.pod)
    records = [msgspec.json.decode(line) for line in (tmp_path / "a.log").read_bytes().splitlines()]
    calls = [r for r in records if (r.get("arguments") or {}).get("digest")]
    assert [r["arguments"]["key"] for r in calls] == [want, rotated]
    # Whoever holds each key (derived from the root Secret) recomputes each digest.
    for record, root in zip(calls, (first, second), strict=True):
        expected = digest_json(WRITE[1], server_key(root, "agents/files"))
        assert record["arguments"]["digest"] == expected


def test_a_binary_root_key_is_used_whole_by_the_operator_and_by_verify(tmp_path: Path) -> None:
    """A raw 32-byte root that begins and ends with whitespace bytes is neither trimmed (too
    short, or another key) nor refused; a text root loses only the newline around it."""
    reader = AuditRootKey(cast(KubeClient, None), operator_settings(tmp_path))
    binary = b"\n\t" + bytes(range(200, 228)) + b" \r"
    text = b"A" * 44
    for stored_value, root in ((binary, binary), (text + b"\n", text), (b" " + text, text)):
        secret = {"data": {"key": base64.b64encode(stored_value).decode()}}
        path = tmp_path / "root"
        path.write_bytes(stored_value)  # what `kubectl get secret ... | base64 -d > root` writes
        assert reader.key_of(secret) == root
        assert digest_key(path) == root  # `remit audit verify --digest-root root` agrees
