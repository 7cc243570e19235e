"""The demo's moving parts as real processes: an OIDC issuer, an MCP server, the gateway.

Used by ``remit demo``; every part listens on 127.0.0.1 on a free port and is stopped on exit,
and the run's temporary directory (policies, logs, decision records) is removed.
The policy directory is ``examples/`` with its MCPServer pointed at the local issuer.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from remit.demo.issuer import Issuer
from remit.gateway.ports import free_ports, wait_for_port

SERVER_YAML = """\
# The files MCP server, authenticated by the demo's local OIDC issuer.
apiVersion: remit.dev/v1alpha1
kind: MCPServer
metadata: {{name: files, namespace: agents}}
spec:
  selector: {{matchLabels: {{app: files-mcp}}}}
  authentication:
    issuer: {issuer}
    audience: {audience}
    requiredScopes: [mcp:tools]
  toolPinning: Enforce
"""


@dataclass(frozen=True)
class Stack:
    """Where the running demo parts are."""

    issuer: Issuer
    gateway_url: str
    admin_url: str
    audience: str
    audit_file: Path
    policy_dir: Path
    consent_url: str = ""


def _start(args: list[str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        process = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_for_port("127.0.0.1", port, 30)
    except TimeoutError as exc:
        process.terminate()
        raise RuntimeError(f"{args[2]} did not start; see {log}") from exc
    return process


@contextlib.contextmanager
def running_stack(examples: Path) -> Iterator[Stack]:
    """Start issuer, MCP server and gateway; stop them all on exit."""
    work = Path(tempfile.mkdtemp(prefix="remit-demo-"))
    processes: list[subprocess.Popen[bytes]] = []
    issuer = Issuer()
    issuer.start()
    try:
        upstream_port, port, admin_port, consent_port = free_ports(4)
        consent_url = f"http://127.0.0.1:{consent_port}"
        issuer.login.register("remit-consent", f"{consent_url}/callback")
        audience = f"http://127.0.0.1:{port}/mcp"
        policy = work / "policy"
        policy.mkdir()
        for name in ("policies.yaml", "grants.yaml"):
            shutil.copy(examples / name, policy / name)
        (policy / "server.yaml").write_text(
            SERVER_YAML.format(issuer=issuer.issuer, audience=audience)
        )
        audit = work / "decisions.jsonl"
        python = sys.executable
        processes.append(
            _start(
                [python, "-m", "remit.demo.files_server", "--port", str(upstream_port)],
                upstream_port,
                work / "files-server.log",
            )
        )
        processes.append(
            _start(
                [python, "-m", "remit", "gateway", "-f", str(policy), "--server", "files",
                 "--upstream", f"http://127.0.0.1:{upstream_port}/mcp",
                 "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin_port}",
                 "--audit-file", str(audit), "--consent-listen", f"127.0.0.1:{consent_port}"],
                port,
                work / "gateway.log",
            )
        )  # fmt: skip
        yield Stack(
            issuer,
            audience,
            f"http://127.0.0.1:{admin_port}",
            audience,
            audit,
            policy,
            consent_url,
        )
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        issuer.stop()
        shutil.rmtree(work, ignore_errors=True)  # a demo run leaves nothing behind
