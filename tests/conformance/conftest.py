"""The conformance tier: the official MCP suite against our SDK server, directly and through a
gateway that allows everything, once per protocol era per target for the whole session.

Node.js, the suite and the Inspector come from ``make node-tools`` (scripts/node_tools.py).
Without them these tests skip, saying so; with ``REMIT_REQUIRE_NODE_TOOLS=1`` (CI) they fail.
Two conformance servers run (one reached directly, one behind the gateway) so the suite's own
list-mutating scenarios in one run cannot disturb the other; the direct and gateway runs of an
era run side by side. A scenario the suite abandons at its timeout is run once more, alone, on
that target (``_settled``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from remit.demo.issuer import Issuer
from tests.conformance.suite import ERAS, NodeTools, Results, installed_tools
from tests.support.ports import free_port
from tests.support.stack import (
    GatewayProcess,
    Process,
    audience_for,
    gateway,
    reserve_gateway_ports,
    server_yaml,
    write_policy_dir,
)

SUBJECT = "alice@example.com"
AGENT = "conformance-agent"
ALLOW_EVERYTHING = f"""\
apiVersion: remit.dev/v1alpha1
kind: AgentPolicy
metadata: {{name: everything, namespace: agents}}
spec:
  servers: [conformance]
  agents: [{AGENT}]
  subjects: {{users: ["{SUBJECT}"]}}
  rules:
  - {{name: tools, effect: Allow, tools: ["*"]}}
  - {{name: resources, effect: Allow, resources: ["*"]}}
  - {{name: prompts, effect: Allow, prompts: ["*"]}}
"""


@dataclass(frozen=True)
class Targets:
    """The conformance server reached directly, and another behind a gateway (with a token)."""

    direct: str
    gateway: str
    token: str
    process: GatewayProcess


@dataclass(frozen=True)
class EraResults:
    direct: Results
    gateway: Results
    required: frozenset[str]


@pytest.fixture(scope="session")
def node_tools() -> NodeTools:
    found = installed_tools()
    if found is None:
        message = (
            "Node.js / conformance suite / Inspector not installed: run `make node-tools` "
            "(scripts/node_tools.py, needs npm and the npm registry)"
        )
        if os.environ.get("REMIT_REQUIRE_NODE_TOOLS"):
            pytest.fail(message)
        pytest.skip(message)
    return NodeTools(found)


def _conformance_server(log_dir: Path, name: str) -> tuple[Process, str]:
    port = free_port()
    argv = [sys.executable, "-m", "tests.conformance.server", "--port", str(port)]
    process = Process.start(name, argv, log_dir)
    process.wait_for_port(port)
    return process, f"http://127.0.0.1:{port}/mcp"


@pytest.fixture(scope="session")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Targets]:
    log_dir = tmp_path_factory.mktemp("conformance")
    with ExitStack() as stack, Issuer() as issuer:
        direct, direct_url = _conformance_server(log_dir, "conformance-direct")
        stack.callback(direct.stop)
        behind, behind_url = _conformance_server(log_dir, "conformance-behind")
        stack.callback(behind.stop)
        ports = reserve_gateway_ports()
        audience = audience_for(ports[0])
        server = server_yaml(issuer.issuer, audience, name="conformance")
        policy = write_policy_dir(
            log_dir / "policy", server, examples=False, extra={"allow.yaml": ALLOW_EVERYTHING}
        )
        running = stack.enter_context(
            gateway(
                log_dir,
                upstream_url=behind_url,
                ports=ports,
                policy_dir=policy,
                server="conformance",
                audit_file=log_dir / "audit.jsonl",
            )
        )
        token = issuer.mint(
            SUBJECT, agent=AGENT, audience=audience, scopes=["mcp:tools"], expires_in=900
        )
        yield Targets(direct_url, running.url, token, running)


def _settled(
    tools: NodeTools, url: str, era: str, out: Path, name: str, token: str | None = None
) -> Results:
    """The run's results, with each scenario it abandoned at the suite's timeout run once more.

    The SDK server leaves a session's server-to-client request (sampling, elicitation) now and
    then unanswered when the machine is loaded, reached directly or not; such a scenario gets
    one more run, on either target, and what that run finds counts. A gateway defect fails
    again on the second run, so it still fails the comparison."""
    results = Results.read(out / name)
    for scenario in sorted(results.timed_out()):
        again = out / f"{name}-{scenario}"
        process = tools.start_suite(url, era, again, token=token, scenario=scenario)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        results = results.replace(Results.read(again), scenario)
    return results


@pytest.fixture(scope="session")
def suite_results(
    node_tools: NodeTools, targets: Targets, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, EraResults]:
    """Each era's run directly and through the gateway (side by side), read back."""
    out = tmp_path_factory.mktemp("suite")
    results: dict[str, EraResults] = {}
    for era in ERAS:
        runs = {
            "direct": node_tools.start_suite(targets.direct, era, out / era / "direct"),
            "gateway": node_tools.start_suite(
                targets.gateway, era, out / era / "gateway", token=targets.token
            ),
        }
        for process in runs.values():
            try:
                process.wait(timeout=240)
            except Exception:
                process.kill()
                raise
        direct = _settled(node_tools, targets.direct, era, out / era, "direct")
        gateway_results = _settled(
            node_tools, targets.gateway, era, out / era, "gateway", targets.token
        )
        results[era] = EraResults(direct, gateway_results, node_tools.required(era))
    return results
