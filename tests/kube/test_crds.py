"""Item 1: the three CRDs from crds/ on a real API server, which itself rejects bad objects.

The API server checks what no emulator does: structural schemas, CEL rules compiled within
their cost budget, and the rules' messages returned to whoever wrote a bad object.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kube.cluster import install_crds, namespace
from tests.kube.controlplane import ADMIN_USER, ApiError, ControlPlane

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
API = "remit.dev/v1alpha1"


def examples(kind: str) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == kind]
    return docs


@pytest.fixture(scope="module")
def crds(control_plane: ControlPlane) -> list[dict[str, Any]]:
    return install_crds(control_plane.admin)


def test_every_crd_is_established_with_a_structural_schema(
    control_plane: ControlPlane, crds: list[dict[str, Any]]
) -> None:
    names = sorted(c["metadata"]["name"] for c in crds)
    assert names == [
        "agentpolicies.remit.dev",
        "consentgrants.remit.dev",
        "mcpservers.remit.dev",
    ]
    for crd in crds:
        stored = control_plane.admin.get(
            "apiextensions.k8s.io/v1", "CustomResourceDefinition", None, crd["metadata"]["name"]
        )
        assert stored is not None
        conditions = {c["type"]: c["status"] for c in stored["status"]["conditions"]}
        assert conditions.get("Established") == "True", conditions
        assert conditions.get("NamesAccepted") == "True", conditions
        assert conditions.get("NonStructuralSchema", "False") == "False", conditions


@pytest.mark.parametrize("kind", ["MCPServer", "AgentPolicy", "ConsentGrant"])
def test_the_examples_are_accepted(
    control_plane: ControlPlane, crds: list[dict[str, Any]], kind: str
) -> None:
    api = control_plane.admin
    with namespace(api, f"crd-{kind.lower()}") as ns:
        for doc in examples(kind):
            doc["metadata"]["namespace"] = ns
            if kind == "ConsentGrant":  # the admin applies them in its own name
                doc["spec"]["grantedBy"] = ADMIN_USER
            created = api.create(doc)
            assert created["metadata"]["uid"]


def _grant() -> dict[str, Any]:
    grant = copy.deepcopy(examples("ConsentGrant")[0])
    grant["spec"]["grantedBy"] = ADMIN_USER  # the chart's admission policy, when installed
    return grant


def _rejected(api: Any, ns: str, doc: dict[str, Any]) -> ApiError:
    doc["metadata"]["namespace"] = ns
    with pytest.raises(ApiError) as caught:
        api.create(doc)
    assert caught.value.status == 422, caught.value
    return caught.value


def test_a_grant_without_expires_at_is_refused_by_the_server(
    control_plane: ControlPlane, crds: list[dict[str, Any]]
) -> None:
    api = control_plane.admin
    with namespace(api, "crd-required") as ns:
        grant = _grant()
        del grant["spec"]["expiresAt"]
        error = _rejected(api, ns, grant)
        assert "spec.expiresAt: Required value" in error.message


def test_a_grant_of_nothing_is_refused_with_the_cel_rules_message(
    control_plane: ControlPlane, crds: list[dict[str, Any]]
) -> None:
    api = control_plane.admin
    with namespace(api, "crd-cel") as ns:
        grant = _grant()
        grant["spec"].pop("tools")
        error = _rejected(api, ns, grant)
        assert "grant at least one of tools, resources or prompts" in error.message


def test_a_bad_enum_is_refused_naming_the_supported_values(
    control_plane: ControlPlane, crds: list[dict[str, Any]]
) -> None:
    api = control_plane.admin
    with namespace(api, "crd-enum") as ns:
        policy = copy.deepcopy(examples("AgentPolicy")[0])
        policy["spec"]["rules"][0]["effect"] = "Maybe"
        error = _rejected(api, ns, policy)
        assert 'spec.rules[0].effect: Unsupported value: "Maybe"' in error.message
        assert '"Allow"' in error.message
        assert '"Deny"' in error.message


def test_a_servers_consent_url_must_be_https_or_loopback(
    control_plane: ControlPlane, crds: list[dict[str, Any]]
) -> None:
    api = control_plane.admin
    with namespace(api, "crd-consent") as ns:
        server = copy.deepcopy(examples("MCPServer")[0])
        server["spec"]["consent"] = {"url": "http://consent.example.com"}
        assert "spec.consent.url" in _rejected(api, ns, server).message
        server["spec"]["consent"] = {"url": "http://127.0.0.1:8080"}
        server["metadata"]["namespace"] = ns
        assert api.create(server)["spec"]["consent"]["url"] == "http://127.0.0.1:8080"


def test_server_ports_must_differ_and_rule_names_be_unique(
    control_plane: ControlPlane, crds: list[dict[str, Any]]
) -> None:
    api = control_plane.admin
    with namespace(api, "crd-rules") as ns:
        server = copy.deepcopy(examples("MCPServer")[0])
        server["spec"]["gateway"] = {"port": 9000, "adminPort": 9000}
        assert "port and adminPort must differ" in _rejected(api, ns, server).message
        policy = copy.deepcopy(examples("AgentPolicy")[0])
        policy["spec"]["rules"][1]["name"] = policy["spec"]["rules"][0]["name"]
        assert "rule names must be unique" in _rejected(api, ns, policy).message


def test_status_is_a_subresource_users_cannot_set_through_the_object(
    control_plane: ControlPlane, crds: list[dict[str, Any]]
) -> None:
    api = control_plane.admin
    with namespace(api, "crd-status") as ns:
        grant = _grant()
        grant["metadata"]["namespace"] = ns
        grant["status"] = {"phase": "Active"}
        created = api.create(grant)
        assert "status" not in created  # ignored on create: only /status writes it
