"""The identity-provider tier: one real Keycloak, one MCP server and one ``remit gateway`` per
test session, shared by every test here; and one real Dex with its own gateway in front of the
same MCP server (``test_dex.py``).

Keycloak is installed and built by ``scripts/keycloak.py`` (``make keycloak``; ``make test``
tries it first). Without it these tests skip, saying so; with ``REMIT_REQUIRE_IDP=1`` (CI) they
fail instead. The gateway runs standalone on a policy directory: the MCPServer below (tokens
from the Keycloak realm, groups from ``groups`` and from realm roles) and ``policies.yaml``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.idp import dex as dex_recipe
from tests.idp.keycloak import Keycloak, installer, issuer_for
from tests.support import stack
from tests.support.ports import free_port

POLICIES = Path(__file__).with_name("policies.yaml")
DEX_POLICIES = Path(__file__).with_name("dex-policies.yaml")
SERVER = """\
apiVersion: remit.dev/v1alpha1
kind: MCPServer
metadata: {{name: files, namespace: agents}}
spec:
  selector: {{matchLabels: {{app: files}}}}
  authentication:
    issuer: {issuer}
    audience: {audience}
    requiredScopes: ["mcp:tools"]
    groupClaims:
    - claim: groups
    - claim: /realm_access/roles
      prefix: "role:"
    jwksCacheSeconds: 2
    jwksMinRefreshSeconds: 1
"""


@pytest.fixture(scope="session")
def idp_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("idp")


@pytest.fixture(scope="session")
def installed() -> None:
    """Skip (or, with ``REMIT_REQUIRE_IDP``, fail) when Keycloak is not installed."""
    if not installer.present():
        message = (
            "Keycloak not installed: run `make keycloak` "
            "(scripts/keycloak.py; needs mvn and Java 21+)"
        )
        if os.environ.get("REMIT_REQUIRE_IDP"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def keycloak_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def upstream(idp_logs: Path) -> Iterator[stack.Upstream]:
    with stack.upstream(idp_logs) as running:
        yield running


@pytest.fixture(scope="session")
def gateway(
    installed: None, idp_logs: Path, upstream: stack.Upstream, keycloak_port: int
) -> Iterator[stack.GatewayProcess]:
    """The gateway starts first (it asks the issuer for keys only when a token arrives), so
    its port is held while Keycloak, which needs that port for the audience, starts."""
    ports = stack.reserve_gateway_ports()
    server = SERVER.format(issuer=issuer_for(keycloak_port), audience=stack.audience_for(ports[0]))
    policy = stack.write_policy_dir(
        idp_logs / "policy", server, examples=False, extra={"policies.yaml": POLICIES.read_text()}
    )
    with stack.gateway(
        idp_logs,
        upstream_url=upstream.url,
        ports=ports,
        policy_dir=policy,
        audit_file=idp_logs / "decisions.jsonl",
    ) as running:
        yield running


@pytest.fixture(scope="session")
def keycloak(
    idp_logs: Path, keycloak_port: int, gateway: stack.GatewayProcess
) -> Iterator[Keycloak]:
    running = Keycloak.start(idp_logs, audience=gateway.url, port=keycloak_port)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def dex_installed() -> None:
    """Skip (or, with ``REMIT_REQUIRE_DEX``, fail) when Dex is not built."""
    if not dex_recipe.installer.present():
        message = "Dex not built: run `make dex` (scripts/dex.py; needs Go and the module proxy)"
        if os.environ.get("REMIT_REQUIRE_DEX"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def dex_stack(
    dex_installed: None, idp_logs: Path, upstream: stack.Upstream
) -> Iterator[tuple[dex_recipe.Dex, stack.GatewayProcess]]:
    """Dex and a gateway, both configured from docs/identity.md's Dex recipe. Each needs the
    other's address (the issuer; the audience), so both ports are reserved first."""
    ports = stack.reserve_gateway_ports()
    dex_port = free_port()
    audience = stack.audience_for(ports[0])
    logs = idp_logs / "dex"
    logs.mkdir()
    policy = stack.write_policy_dir(
        logs / "policy",
        dex_recipe.server_yaml(dex_port, audience),
        examples=False,
        extra={"policies.yaml": DEX_POLICIES.read_text()},
    )
    with stack.gateway(
        logs,
        upstream_url=upstream.url,
        ports=ports,
        policy_dir=policy,
        audit_file=logs / "decisions.jsonl",
    ) as running:
        dex = dex_recipe.Dex.start(logs, port=dex_port, audience=audience)
        try:
            yield dex, running
        finally:
            dex.stop()
