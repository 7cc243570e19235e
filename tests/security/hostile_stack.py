"""A real ``remit gateway`` in front of the hostile MCP server, both processes on loopback.

``hostile_gateway`` starts the hostile server (``tests.security.hostile_upstream``) and a
gateway whose MCPServer sets tight ``spec.gateway.limits`` so the limits are reached quickly;
``Hostile`` wraps both with the helpers the tests share: posting raw JSON-RPC, finding the
decision and outcome records of a call, and the accounting check.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from remit.demo.issuer import Issuer
from remit.gateway.runner import free_port
from tests.support import stack
from tests.support.mcp_wire import MODERN

MAX_RESPONSE_BYTES = 65536
READ_TIMEOUT = 2
MAX_DEPTH = 64
AGENT = "hostile-bot"


def server_yaml(issuer: str, audience: str, max_depth: int = MAX_DEPTH) -> str:
    return f"""\
apiVersion: remit.dev/v1alpha1
kind: MCPServer
metadata: {{name: hostile, namespace: agents}}
spec:
  selector: {{matchLabels: {{app: hostile}}}}
  authentication: {{issuer: {issuer}, audience: {audience}, requiredScopes: [mcp:tools]}}
  toolPinning: Enforce
  gateway:
    limits:
      maxResponseBytes: {MAX_RESPONSE_BYTES}
      responseReadTimeoutSeconds: {READ_TIMEOUT}
      maxJsonDepth: {max_depth}
---
apiVersion: remit.dev/v1alpha1
kind: AgentPolicy
metadata: {{name: hostile-bot, namespace: agents}}
spec:
  servers: [hostile]
  agents: [{AGENT}]
  rules:
  - name: everything
    effect: Allow
    tools: ["*"]
"""


@dataclass
class Hostile:
    """The gateway, its hostile upstream, and a token for the hostile bot."""

    gateway: stack.GatewayProcess
    upstream: stack.Upstream
    token: str

    def post(self, body: Any, method: str, name: str | None = None, **extra: str) -> httpx.Response:
        """POST a 2026-07-28 JSON-RPC body with matching routing headers (and ``extra``)."""
        headers = {
            "authorization": f"Bearer {self.token}",
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": MODERN,
            "mcp-method": method,
        }
        if name is not None:
            headers["mcp-name"] = name
        headers.update(extra)
        return httpx.post(self.gateway.url, json=body, headers=headers, timeout=30)

    def call_tool(
        self, tool: str, arguments: Any = None, id_: int = 1, **headers: str
    ) -> httpx.Response:
        params = {"name": tool, "arguments": arguments or {}, "_meta": _meta()}
        body = {"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": params}
        return self.post(body, "tools/call", tool, **headers)

    def list_tools(self, mode: str = "normal") -> httpx.Response:
        params = {"_meta": {**_meta(), "test/mode": mode}}
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": params}
        return self.post(body, "tools/list")

    def decision_ids(self, tool: str) -> list[str]:
        """Decision ids the gateway sent upstream with calls of ``tool``, oldest first."""
        return [
            r["headers"]["x-remit-decision"]
            for r in self.upstream.forwarded()
            if isinstance(r["rpc"], dict) and (r["rpc"].get("params") or {}).get("name") == tool
        ]

    def outcome_of(self, tool: str) -> dict[str, Any]:
        """The outcome record of the latest forwarded call of ``tool``."""
        decision = self.decision_ids(tool)[-1]
        (outcome,) = [
            r
            for r in self.gateway.records()
            if r["type"] == "outcome" and r["decisionId"] == decision
        ]
        return outcome


def _meta() -> dict[str, Any]:
    return {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    }


@contextmanager
def hostile_upstream(log_dir: Path, *options: str) -> Iterator[stack.Upstream]:
    port = free_port()
    argv = [sys.executable, "-m", "tests.security.hostile_upstream", "--port", str(port), *options]
    process = stack.Process.start(f"hostile-{port}", argv, log_dir, stdout=subprocess.DEVNULL)
    try:
        process.wait_for_port(port)
        yield stack.Upstream(process, port)
    finally:
        process.stop()


@contextmanager
def hostile_gateway(
    log_dir: Path, issuer: Issuer, name: str, max_depth: int = MAX_DEPTH, *options: str
) -> Iterator[Hostile]:
    """The hostile server (started with ``options``) behind a gateway with tight limits;
    records in ``<name>.jsonl``."""
    with hostile_upstream(log_dir, *options) as upstream:
        ports = stack.reserve_gateway_ports()
        audience = stack.audience_for(ports[0])
        policy = stack.write_policy_dir(
            log_dir / f"{name}-policy",
            server_yaml(issuer.issuer, audience, max_depth),
            examples=False,
        )
        with stack.gateway(
            log_dir,
            upstream_url=upstream.url,
            ports=ports,
            policy_dir=policy,
            server="hostile",
            audit_file=log_dir / f"{name}.jsonl",
        ) as gateway:
            token = issuer.mint(
                AGENT + "-user", agent=AGENT, audience=audience, scopes=["mcp:tools"]
            )
            yield Hostile(gateway, upstream, token)


def accounting_errors(hostile: Hostile) -> list[str]:
    """What breaks the accounting rule: every request that reached the upstream for a client
    has exactly one allow record before it and one outcome after it, and nothing denied
    reached it. Empty when the books balance."""
    records = hostile.gateway.records()
    position = {r["id"]: i for i, r in enumerate(records)}
    errors: list[str] = []
    for request in hostile.upstream.forwarded():
        decision = request["headers"].get("x-remit-decision")
        if request["method"] != "POST" or not isinstance(request["rpc"], dict):
            continue
        if "id" not in request["rpc"]:
            continue  # a notification: decided by admit_message, no decision record
        allows = [r for r in records if r["type"] == "decision" and r["id"] == decision]
        outcomes = [r for r in records if r["type"] == "outcome" and r["decisionId"] == decision]
        what = f"{request['rpc'].get('method')} {decision}"
        if len(allows) != 1 or allows[0]["decision"] != "allow":
            errors.append(f"{what}: {len(allows)} allow records")
        elif len(outcomes) != 1:
            errors.append(f"{what}: {len(outcomes)} outcome records")
        elif position[outcomes[0]["id"]] < position[allows[0]["id"]]:
            errors.append(f"{what}: outcome before decision")
    return errors
