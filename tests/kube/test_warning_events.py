"""The ``Warnings`` condition and Warning event of an AgentPolicy, with the operator running as in
production against the real API server.

The emulator tier (kmock) loses one of two events posted together, so there only the
ConsentGrant's event is checked; here both kinds are created at once and both events must be
stored by the API server, each naming its own object.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from remit.demo.issuer import Issuer
from tests.kube.cluster import namespace, wait_for
from tests.kube.controlplane import Api, ControlPlane
from tests.kube.operator import OperatorProcess
from tests.kube.world import API, admin_grant, mcpserver
from tests.support.policies import policy, rule


def _warning(api: Api, ns: str, kind: str, name: str) -> dict[str, Any] | None:
    for event in api.list("v1", "Event", ns):
        involved = event.get("involvedObject") or {}
        if (event.get("type"), involved.get("kind"), involved.get("name")) == (
            "Warning",
            kind,
            name,
        ):
            return dict(event)
    return None


def _condition(api: Api, ns: str, kind: str, name: str) -> dict[str, Any] | None:
    found = api.get(API, kind, ns, name) or {}
    for cond in (found.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Warnings":
            return dict(cond)
    return None


def test_an_agentpolicy_naming_no_server_gets_a_warnings_condition_and_a_warning_event(
    control_plane: ControlPlane, operator: OperatorProcess, issuer: Issuer
) -> None:
    api = control_plane.admin
    with namespace(api, "warn-policy") as ns:
        api.create(policy("bot", rule("read", tools=["read_*"]), servers=["nope"], namespace=ns))
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        api.create(admin_grant("g", server="nope", expires_at=tomorrow, namespace=ns))  # at once

        event = wait_for(lambda: _warning(api, ns, "AgentPolicy", "bot"), timeout=30)
        assert event["reason"] == "NoServer"
        assert "nope" in event["message"]
        assert event["involvedObject"]["namespace"] == ns
        cond = wait_for(lambda: _condition(api, ns, "AgentPolicy", "bot"), timeout=30)
        assert (cond["status"], cond["reason"]) == ("True", "NoServer")
        assert "nope" in cond["message"]
        grant_event = wait_for(lambda: _warning(api, ns, "ConsentGrant", "g"), timeout=30)
        assert grant_event["reason"] == "NoServer"

        # once the server exists the warning clears (the operator re-checks what names it)
        api.create(mcpserver(ns, issuer.issuer, issuer.jwks_uri, name="nope"))
        wait_for(
            lambda: (_condition(api, ns, "AgentPolicy", "bot") or {}).get("status") == "False",
            timeout=30,
        )
