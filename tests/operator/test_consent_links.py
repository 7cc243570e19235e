"""Injected sidecars link consent_required denials to the consent page: the operator delivers
the page's URL and the sealing key to each sidecar process, encrypted to it and signed, never
through the pod spec (kmock API server, real gateway processes, real MCP calls and JWTs)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import httpx
import kmock
import orjson
import pytest

from remit.demo.issuer import Issuer
from remit.policy.consentdelivery import holding, seal_delivery
from remit.policy.consentrequest import ConsentSealer
from remit.policy.signing import generate_key
from remit_operator.auditkeys import AuditRootKey
from remit_operator.consentpush import (
    KEY_TTL,
    SETTLE_SECONDS,
    ConsentKey,
    _key_of,
    deliver_all,
)
from remit_operator.kube import KubeClient
from remit_operator.push import Pusher
from tests.operator.support import (
    AUDIENCE,
    OPERATOR_NAMESPACE,
    RunningOperator,
    apply,
    eventually,
    fleet,
    free_everywhere,
    operator_settings,
    running_operator,
    server_doc,
    stored,
)
from tests.support import mcp_wire
from tests.support.policies import policy, rule

PAGE = "https://consent.example.test"


@pytest.fixture
async def with_consent(
    k8s: kmock.KubernetesEmulator, tmp_path: Path
) -> AsyncIterator[RunningOperator]:
    settings = operator_settings(tmp_path, {"REMIT_CONSENT_PUBLIC_URL": PAGE})
    async with running_operator(k8s, settings) as running:
        yield running


def _denial(url: str, token: str) -> dict[str, Any]:
    answer = mcp_wire.tool_call(
        url, "write_file", {"path": "/data/alice/notes.txt", "content": "hi"}, token=token
    )
    result: dict[str, Any] = orjson.loads(answer.content)["result"]
    return result


async def test_a_sidecar_denies_with_a_link_the_consent_service_can_open(
    k8s: kmock.KubernetesEmulator,
    with_consent: RunningOperator,
    issuer: Issuer,
    upstream: str,
    tmp_path: Path,
) -> None:
    token = issuer.mint("alice@example.com", agent="support-bot", audience=AUDIENCE)
    two = (issuer.issuer, issuer.jwks_uri, upstream, 2, tmp_path)
    async with fleet(k8s, with_consent, *two) as files:
        await apply(k8s, policy("support-bot", rule("write", tools=["write_file"], consent=True)))
        await files.in_sync(previous=files.server_digest())
        # The operator made the key Secret (the consent service mounts the same one).
        secret = await eventually(
            lambda: stored(k8s, "v1/secrets", OPERATOR_NAMESPACE, "remit-consent-key")
        )
        key = _key_of(secret)
        for sidecar in files.sidecars:
            await eventually(lambda s=sidecar: _holds(s))  # type: ignore[misc]
            result = await asyncio.to_thread(_denial, sidecar.url, token)
            assert result["isError"] is True
            facts = result["_meta"]["dev.remit/decision"]
            assert facts["reason"] == "consent_required"
            link = facts["consentUrl"]
            assert link.startswith(f"{PAGE}/consent?r=")
            assert link in result["content"][-1]["text"]
            # The consent service opens it with the key from the Secret: what it verifies.
            sealed = parse_qs(urlsplit(link).query)["r"][0]
            request = ConsentSealer(key).open(sealed, time.time())
            assert (request.id, request.tool) == (facts["decisionId"], "write_file")
            assert request.server == "agents/files"
            # The key is nowhere in the pod spec.
            spec = json.dumps(sidecar.pod)
            assert base64.b64encode(key).decode() not in spec
            assert "remit-consent-key" not in spec


async def test_a_delivery_opens_only_in_its_own_sidecar_and_only_from_the_operator(
    k8s: kmock.KubernetesEmulator,
    with_consent: RunningOperator,
    issuer: Issuer,
    upstream: str,
    tmp_path: Path,
) -> None:
    two = (issuer.issuer, issuer.jwks_uri, upstream, 2, tmp_path)
    async with fleet(k8s, with_consent, *two) as files:
        first, second = files.sidecars
        status = await first.status()
        recipient = status["consent"]["recipient"]
        assert "d" not in recipient  # only the public half is shown
        operator_key = with_consent.runtime.keyring.active
        for_first = seal_delivery(
            operator_key, recipient, "agents/files", "https://evil.example", b"k" * 32, time.time()
        )
        forged = seal_delivery(
            generate_key(), recipient, "agents/files", "https://evil.example", b"k" * 32,
            time.time(),
        )  # fmt: skip
        async with httpx.AsyncClient(timeout=5) as http:
            stolen = await http.put(_consent(second), content=for_first)
            unsigned = await http.put(_consent(first), content=forged)
        assert (stolen.status_code, stolen.json()["reason"]) == (400, "consent_delivery")
        assert "does not open" in stolen.json()["error"]
        assert unsigned.status_code == 400
        assert "signature" in unsigned.json()["error"]
        assert (await first.status())["consent"]["refused"] == 1
        # A sidecar holding something else than it was given (a delivery the operator signed,
        # replayed or not): the periodic resync reads what it holds and delivers again.
        await eventually(lambda: _holds(first))
        other = seal_delivery(
            operator_key, recipient, "agents/files", "https://evil.example", b"k" * 32, time.time()
        )  # issued after the operator's delivery (an earlier one is refused as a replay)
        async with httpx.AsyncClient(timeout=5) as http:
            assert (await http.put(_consent(first), content=other)).status_code == 200
        wrong = holding("https://evil.example", b"k" * 32)
        assert (await first.status())["consent"]["holds"] == wrong
        rt, pusher = with_consent.runtime, Pusher(with_consent.settings)  # on this loop
        secret = stored(k8s, "v1/secrets", OPERATOR_NAMESPACE, "remit-consent-key")
        assert secret is not None
        key, url = _key_of(secret), with_consent.settings.consent.public_url
        pods = [s for s in rt.index.sidecars("agents/files") if s.ip == first.ip]
        assert len(pods) == 1
        believed = {p.pod: (p.incarnation, holding(url, key)) for p in pods}
        args = (pusher, rt.keyring, rt.index.servers["agents/files"], url, key, pods, believed)
        assert await deliver_all(*args) == []  # not a resync: trusted, not read
        assert (await first.status())["consent"]["holds"] == wrong
        assert await deliver_all(*args, check_all=True) == []
        assert (await first.status())["consent"]["holds"] == holding(url, key)
        await pusher.close()


def _consent(sidecar: Any) -> str:
    return f"http://{sidecar.ip}:{sidecar.admin_port}/v1/consent"


async def _holds(sidecar: Any) -> bool:
    status = await sidecar.status()
    return bool(status.get("consent", {}).get("holds"))


async def test_a_server_naming_its_own_consent_service_gets_links_to_it(
    k8s: kmock.KubernetesEmulator, issuer: Issuer, upstream: str, tmp_path: Path
) -> None:
    """``spec.consent.url`` is delivered to that server's sidecars even when the operator has
    no default consent URL, and is what their links point at."""
    own = "https://consent.team-a.example.test/remit"
    settings = operator_settings(tmp_path, {})
    assert not settings.consent.public_url
    token = issuer.mint("alice@example.com", agent="support-bot", audience=AUDIENCE)
    async with running_operator(k8s, settings) as running:
        port = free_everywhere(["127.0.0.2"])  # the fleet's one sidecar binds 127.0.0.2
        admin_port = port
        while admin_port == port:
            admin_port = free_everywhere(["127.0.0.2"])
        doc = server_doc(issuer.issuer, issuer.jwks_uri, port, admin_port)
        doc["spec"]["consent"] = {"url": own}
        await apply(k8s, doc)
        async with fleet(
            k8s, running, issuer.issuer, issuer.jwks_uri, upstream, 1, tmp_path
        ) as one:
            await apply(
                k8s, policy("support-bot", rule("write", tools=["write_file"], consent=True))
            )
            await one.in_sync(previous=one.server_digest())
            (sidecar,) = one.sidecars
            await eventually(lambda: _holds(sidecar))
            result = await asyncio.to_thread(_denial, sidecar.url, token)
            link = result["_meta"]["dev.remit/decision"]["consentUrl"]
            assert link.startswith(f"{own}/consent?r=")


class _OneSecret:
    """The API server's answer for the key Secret (only ``get`` is called once it exists)."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    async def get(self, path: str) -> dict[str, Any]:
        return {"data": {"key": base64.b64encode(base64.b64encode(self.key)).decode()}}


async def test_a_rotated_consent_key_reaches_sidecars_only_once_the_service_can_hold_it(
    tmp_path: Path,
) -> None:
    """The kubelet updates the consent service's mounted Secret a minute or more after the
    API has it: sidecars keep sealing with the old key until the new one settled."""
    old, new, now = b"o" * 32, b"n" * 32, [1000.0]
    secret = _OneSecret(old)
    keys = ConsentKey(cast(KubeClient, secret), operator_settings(tmp_path), lambda: now[0])
    assert await keys.get() == old  # the first key read: at once
    secret.key = new
    now[0] += KEY_TTL
    first_read = now[0]
    assert await keys.get() == old  # read, not yet handed out
    now[0] = first_read + SETTLE_SECONDS - 1  # read again (past KEY_TTL): still settling
    assert await keys.get() == old
    now[0] = first_read + SETTLE_SECONDS + KEY_TTL
    assert await keys.get() == new
    # The audit root key has no second reader: its rotation is used at once.
    root = AuditRootKey(cast(KubeClient, _OneSecret(b"r" * 32)), operator_settings(tmp_path),
                        lambda: now[0])  # fmt: skip
    assert await root.get() == base64.b64encode(b"r" * 32)
