"""A real ``remit gateway`` in front of the hostile MCP server, both processes on loopback.

``hostile_gateway`` starts the hostile server (``tests.security.hostile_upstream``) and a
gateway whose MCPServer sets tight ``spec.gateway.limits`` so the limits are reached quickly;
``Hostile`` wraps both with the helpers the tests share: posting raw JSON-RPC, finding the
decision and outcome records of a call, and the accounting check (``tests.support.accounting``,
the one checker: the hostile server records the log's size as each request arrives).
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
from tests.support import accounting, stack
from tests.support.mcp_wire import MODERN
from tests.support.ports import free_port
from tests.support.stack import REMIT

MAX_RESPONSE_BYTES = 65536
READ_TIMEOUT = 2
MAX_DEPTH = 64
AGENT = "hostile-bot"


def server_yaml(
    issuer: str, audience: str, max_depth: int = MAX_DEPTH, read_timeout: float = READ_TIMEOUT
) -> str:
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
      responseReadTimeoutSeconds: {read_timeout:g}
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

    def check_accounting(self) -> accounting.Accounting:
        """The accounting check over everything the hostile server received so far
        (``AccountingError`` listing every breach)."""
        assert self.gateway.audit_file is not None
        return accounting.check(self.upstream.requests(), self.gateway.audit_file, remit=REMIT)

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
def hostile_upstream(
    log_dir: Path, *options: str, audit_file: Path | None = None
) -> Iterator[stack.Upstream]:
    """The hostile server; with ``audit_file`` (the log of the one gateway in front of it)
    each request records the log's size when it arrived."""
    port = free_port()
    argv = [sys.executable, "-m", "tests.security.hostile_upstream", "--port", str(port), *options]
    if audit_file is not None:
        argv += ["--audit-file", str(audit_file)]
    process = stack.Process.start(f"hostile-{port}", argv, log_dir, stdout=subprocess.DEVNULL)
    try:
        process.wait_for_port(port)
        yield stack.Upstream(process, port)
    finally:
        process.stop()


@contextmanager
def hostile_gateway(
    log_dir: Path,
    issuer: Issuer,
    name: str,
    max_depth: int = MAX_DEPTH,
    *options: str,
    env: dict[str, str] | None = None,
    read_timeout: float = READ_TIMEOUT,
) -> Iterator[Hostile]:
    """The hostile server (started with ``options``) behind a gateway with tight limits
    (``read_timeout``: the upstream read timeout); records in ``<name>.jsonl``."""
    audit_file = log_dir / f"{name}.jsonl"
    with hostile_upstream(log_dir, *options, audit_file=audit_file) as upstream:
        ports = stack.reserve_gateway_ports()
        audience = stack.audience_for(ports[0])
        policy = stack.write_policy_dir(
            log_dir / f"{name}-policy",
            server_yaml(issuer.issuer, audience, max_depth, read_timeout),
            examples=False,
        )
        with stack.gateway(
            log_dir,
            upstream_url=upstream.url,
            ports=ports,
            policy_dir=policy,
            server="hostile",
            audit_file=audit_file,
            env=env,
        ) as gateway:
            token = issuer.mint(
                AGENT + "-user", agent=AGENT, audience=audience, scopes=["mcp:tools"]
            )
            yield Hostile(gateway, upstream, token)
