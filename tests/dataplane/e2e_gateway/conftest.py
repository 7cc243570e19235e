"""Fixtures for the assembled gateway: one issuer, and one MCP server plus one ``remit gateway``
process per configuration, shared by every test that uses that configuration.

The main configuration is the examples' policies and grants (the support bot on the files
server) plus ``EXTRA_POLICIES``: a readme resource and the diagnostic ``request_headers`` tool
for the support bot, a prompt for ``prompt-bot``, and a rate-limited rule for ``rate-bot``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from remit.demo.issuer import Issuer
from tests.support import stack

MODES = ["legacy", "2026-07-28"]
ALICE = "alice@example.com"
BOB = "bob@example.com"
MALLORY = "mallory@example.com"
BOT = "support-bot"
SCOPES = ("mcp:tools",)
MAX_BODY = 65536

EXTRA_POLICIES = """\
apiVersion: remit.dev/v1alpha1
kind: AgentPolicy
metadata: {name: e2e-support-extras, namespace: agents}
spec:
  servers: [files]
  agents: [support-bot]
  rules:
  - name: readme-resource
    effect: Allow
    resources: ["files://readme"]
  - name: diagnostics
    effect: Allow
    tools: [request_headers]
---
apiVersion: remit.dev/v1alpha1
kind: AgentPolicy
metadata: {name: prompt-bot, namespace: agents}
spec:
  servers: [files]
  agents: [prompt-bot]
  rules:
  - name: summarize
    effect: Allow
    prompts: [summarize_file]
---
apiVersion: remit.dev/v1alpha1
kind: AgentPolicy
metadata: {name: rate-bot, namespace: agents}
spec:
  servers: [files]
  agents: [rate-bot]
  rules:
  - name: list-twice
    effect: Allow
    tools: [list_files]
    rateLimit: {calls: 2, per: 1m}
"""

Mint = Callable[..., str]
ERIN = "erin@example.com"  # her grant was revoked before the gateway started
FRANK = "frank@example.com"  # his grant expired the day before the gateway started


def ended_grants() -> str:
    """Two grants that had ended when the bundle was compiled (named in denials)."""
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    grants = [("erin-write", ERIN, "2099-01-01T00:00:00Z", "true"),
              ("frank-write", FRANK, yesterday, "false")]  # fmt: skip
    return "---\n".join(
        f"""apiVersion: remit.dev/v1alpha1
kind: ConsentGrant
metadata: {{name: {name}, namespace: agents}}
spec: {{subject: "{subject}", agent: support-bot, server: files, tools: [write_file],
  expiresAt: "{expires}", grantedBy: "{subject}", revoked: {revoked}}}
"""
        for name, subject, expires, revoked in grants
    )


@pytest.fixture(scope="package")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-gateway")


@pytest.fixture(scope="package")
def issuer() -> Iterator[Issuer]:
    with Issuer() as running:
        yield running


@pytest.fixture(scope="package")
def main_ports() -> tuple[int, int]:
    return stack.reserve_gateway_ports()


@pytest.fixture(scope="package")
def audience(main_ports: tuple[int, int]) -> str:
    return stack.audience_for(main_ports[0])


@pytest.fixture(scope="package")
def upstream(logs: Path) -> Iterator[stack.Upstream]:
    with stack.upstream(logs) as running:
        yield running


@pytest.fixture(scope="package")
def gateway(
    logs: Path, issuer: Issuer, upstream: stack.Upstream, main_ports: tuple[int, int], audience: str
) -> Iterator[stack.GatewayProcess]:
    policy = stack.write_policy_dir(
        logs / "main-policy",
        stack.server_yaml(issuer.issuer, audience),
        extra={"extras.yaml": EXTRA_POLICIES, "ended.yaml": ended_grants()},
    )
    with stack.gateway(
        logs,
        upstream_url=upstream.url,
        ports=main_ports,
        policy_dir=policy,
        audit_file=logs / "main-audit.jsonl",
        # Interval 0: every refusal gets its own record, so each attack's record can be
        # checked here; aggregation is tested in tests/security.
        env={"REMIT_MAX_BODY_BYTES": str(MAX_BODY), "REMIT_REFUSAL_INTERVAL": "0"},
    ) as running:
        yield running


@pytest.fixture(scope="package")
def mint(issuer: Issuer, audience: str) -> Mint:
    """Mint a token for the main gateway: alice through support-bot with mcp:tools unless told."""

    def make(subject: str = ALICE, **options: Any) -> str:
        options.setdefault("agent", BOT)
        options.setdefault("audience", audience)
        options.setdefault("scopes", SCOPES)
        return issuer.mint(subject, **options)

    return make


@asynccontextmanager
async def connect(url: str, token: str, mode: str, **headers: str) -> AsyncIterator[Client]:
    """The real MCP SDK client with a bearer token, in ``mode`` (legacy or 2026-07-28)."""
    sent = {"Authorization": f"Bearer {token}", **headers}
    async with httpx2.AsyncClient(headers=sent, timeout=10) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode=mode) as client:  # type: ignore[arg-type]
            yield client
