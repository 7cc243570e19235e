"""A sidecar installs only its own server's bundles, and only fresh ones; refusals are visible.

The operator signs every MCPServer's bundle with one key, so a signature proves only that the
operator made a bundle, not for whom. A real sidecar process (``REMIT_SERVER=agents/files``)
is pushed, on its admin port, a bundle compiled for another server (its own issuer, allow-all
for its agent, a far higher serial) and signed with the same key: it must be refused with a
4xx naming both servers, the old policy must stay in force (the other issuer's tokens are
refused, alice's calls still decided by the files policy), and ``/v1/status``, ``/metrics`` and
the log must show the refusal. A bundle signed long ago is refused by a freshly started sidecar.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from remit.api.loader import load
from remit.demo.issuer import Issuer
from remit.policy.compiler import compile_bundle
from remit.policy.signing import generate_key, save_key, sign
from tests.support import mcp_wire, stack
from tests.support.stack import GatewayProcess, Upstream, metric_value

ALICE = "alice@example.com"
SERIAL = 10
READ = {"path": "/data/alice/notes.txt"}

OTHER_SERVER = """\
apiVersion: remit.dev/v1alpha1
kind: AgentPolicy
metadata: {name: anything-goes, namespace: agents}
spec:
  servers: [other]
  agents: [evil-bot]
  rules:
  - name: all
    effect: Allow
    tools: ["*"]
"""


@dataclass
class Sidecar:
    gateway: GatewayProcess
    key: Any
    policy: Path
    token: str
    audience: str


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bundle-binding")


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with Issuer() as running:
        yield running


@pytest.fixture(scope="module")
def other_issuer() -> Iterator[Issuer]:
    with Issuer() as running:
        yield running


@pytest.fixture(scope="module")
def upstream(logs: Path) -> Iterator[Upstream]:
    with stack.upstream(logs) as running:
        yield running


def _sidecar(logs: Path, issuer: Issuer, upstream: Upstream, name: str) -> Iterator[Sidecar]:
    key = generate_key()
    public = logs / f"{name}-key.pub.json"
    save_key(key, public, private=False)
    ports = stack.reserve_gateway_ports()
    audience = stack.audience_for(ports[0])
    policy = stack.write_policy_dir(
        logs / f"{name}-policy", stack.server_yaml(issuer.issuer, audience)
    )
    token = issuer.mint(ALICE, agent="support-bot", audience=audience, scopes=["mcp:tools"])
    with stack.gateway(
        logs,
        upstream_url=upstream.url,
        ports=ports,
        public_key=public,
        audit_file=logs / f"{name}-audit.jsonl",
        env={"REMIT_SERVER": "agents/files", "REMIT_POD_NAME": f"{name}-0"},
    ) as gateway:
        yield Sidecar(gateway, key, policy, token, audience)


@pytest.fixture(scope="module")
def sidecar(logs: Path, issuer: Issuer, upstream: Upstream) -> Iterator[Sidecar]:
    """A sidecar for agents/files holding its own bundle (serial 10)."""
    for running in _sidecar(logs, issuer, upstream, "bound"):
        answer = _put(running, _signed(running.policy, running.key, SERIAL))
        assert answer.status_code == 200, answer.text
        yield running


def _signed(
    policy: Path, key: Any, serial: int, server: str = "files", now: datetime | None = None
) -> str:
    loaded = load([policy])
    assert not loaded.errors, loaded.errors
    bundle = compile_bundle(loaded.resources, server, namespace="agents", serial=serial, now=now)
    return sign(bundle, key)


def _put(sidecar: Sidecar, body: str) -> httpx.Response:
    return httpx.put(f"{sidecar.gateway.admin}/v1/bundle", content=body, timeout=30)


def _other_server_bundle(logs: Path, sidecar: Sidecar, other_issuer: Issuer) -> str:
    """Allow-all for evil-bot on agents/other, whose tokens come from another issuer but name
    this sidecar's audience; signed with the operator's (the same) key, serial far ahead."""
    other = stack.write_policy_dir(
        logs / "other-policy",
        stack.server_yaml(other_issuer.issuer, sidecar.audience, name="other"),
        examples=False,
        extra={"anything.yaml": OTHER_SERVER},
    )
    return _signed(other, sidecar.key, 10**13, server="other")


def test_a_bundle_for_another_server_is_refused_and_the_old_policy_stays(
    logs: Path, sidecar: Sidecar, other_issuer: Issuer, upstream: Upstream
) -> None:
    before = httpx.get(f"{sidecar.gateway.admin}/v1/status", timeout=5).json()
    answer = _put(sidecar, _other_server_bundle(logs, sidecar, other_issuer))
    assert answer.status_code == 422
    body = answer.json()
    assert body["reason"] == "wrong_server"
    assert "agents/other" in body["error"]
    assert "agents/files" in body["error"]

    status = httpx.get(f"{sidecar.gateway.admin}/v1/status", timeout=5).json()
    assert status["bundle"] == before["bundle"]
    assert status["bundle"]["serial"] == SERIAL
    assert status["server"] == "agents/files"

    # The other issuer's token gets nothing through, for any tool.
    evil = other_issuer.mint(
        "eve@example.com", agent="evil-bot", audience=sidecar.audience, scopes=["mcp:tools"]
    )
    forwarded = upstream.count()
    for tool, arguments in [
        ("read_file", READ),
        ("write_file", {"path": "/data/alice/notes.txt", "content": "x"}),
        ("delete_file", {"path": "/data/alice/notes.txt"}),
    ]:
        refused = mcp_wire.tool_call(sidecar.gateway.url, tool, arguments, token=evil)
        assert refused.status_code == 401, refused.text
    assert upstream.count() == forwarded

    # Alice's calls are still decided by the files policy: reads allowed, deletes denied.
    read = mcp_wire.tool_call(sidecar.gateway.url, "read_file", READ, token=sidecar.token)
    assert read.status_code == 200
    assert read.json()["result"]["content"][0]["text"] == "alice's notes\n"
    delete = mcp_wire.tool_call(
        sidecar.gateway.url, "delete_file", {"path": "/data/alice/x"}, token=sidecar.token
    )
    assert delete.status_code == 200
    assert "error" in delete.json()
    deletes = [
        r for r in upstream.calls("tools/call") if r["rpc"]["params"]["name"] == "delete_file"
    ]
    assert deletes == []


def test_a_refused_bundle_shows_in_status_metrics_and_the_log(
    logs: Path, sidecar: Sidecar, other_issuer: Issuer
) -> None:
    answer = _put(sidecar, _other_server_bundle(logs, sidecar, other_issuer))
    assert answer.status_code == 422
    status = httpx.get(f"{sidecar.gateway.admin}/v1/status", timeout=5).json()
    refusals = status["bundleRefusals"]
    assert refusals["counts"]["wrong_server"] >= 1
    assert refusals["last"]["reason"] == "wrong_server"
    assert "agents/other" in refusals["last"]["error"]
    assert refusals["last"]["at"].endswith("Z")
    text = sidecar.gateway.metrics()
    count = metric_value(text, "remit_bundle_refusals_total", reason="wrong_server")
    assert count == refusals["counts"]["wrong_server"]
    assert metric_value(text, "remit_bundle_last_refusal_timestamp_seconds") > 0
    assert metric_value(text, "remit_bundle_installs_total", result="installed") == 1
    log = sidecar.gateway.process.stderr()
    assert "bundle refused (wrong_server): bundle is for server agents/other" in log
    assert f"bundle in force: serial {SERIAL}" in log


def test_after_a_refusal_the_operators_next_push_installs(
    logs: Path, sidecar: Sidecar, other_issuer: Issuer
) -> None:
    assert _put(sidecar, _other_server_bundle(logs, sidecar, other_issuer)).status_code == 422
    answer = _put(sidecar, _signed(sidecar.policy, sidecar.key, SERIAL + 1))
    assert answer.status_code == 200, answer.text
    assert answer.json()["serial"] == SERIAL + 1


def test_a_fresh_sidecar_refuses_a_bundle_signed_long_ago(
    logs: Path, issuer: Issuer, upstream: Upstream
) -> None:
    for fresh in _sidecar(logs, issuer, upstream, "fresh"):
        eight_days_ago = datetime.now(UTC) - timedelta(days=8)
        old = _put(fresh, _signed(fresh.policy, fresh.key, 10**13, now=eight_days_ago))
        assert old.status_code == 422
        assert old.json()["reason"] == "stale"
        assert "REMIT_MAX_BUNDLE_AGE_SECONDS" in old.json()["error"]
        assert httpx.get(f"{fresh.gateway.admin}/readyz", timeout=5).status_code == 503
        future = datetime.now(UTC) + timedelta(hours=1)
        ahead = _put(fresh, _signed(fresh.policy, fresh.key, 10**13, now=future))
        assert ahead.status_code == 422
        assert "in the future" in ahead.json()["error"]
        current = _put(fresh, _signed(fresh.policy, fresh.key, SERIAL))
        assert current.status_code == 200, current.text
        text = fresh.gateway.metrics()
        assert metric_value(text, "remit_bundle_refusals_total", reason="stale") == 2
