"""The CRDs' CEL rules compile, give the right verdicts, and refuse what the models refuse.

Each rule is evaluated with ``self`` bound to a valid and an invalid node; then whole
resources are "applied" (defaults, schema, rules) and the verdict compared with pydantic's.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cel
import pytest
import yaml

from remit.api.crdgen import crds
from remit.api.loader import parse
from remit.errors import ResourceError
from tests.dataplane.crds.apiserver import admit

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
ALLOW = {"name": "r", "effect": "Allow"}
DENY = {"name": "r", "effect": "Deny"}

EMPTY_SELECTOR = (
    "selector must set matchLabels or matchExpressions (an empty selector would select every pod "
    "in the namespace)"
)
# message -> (a node the rule accepts, a node it refuses)
VERDICTS: dict[str, tuple[Any, Any]] = {
    "port and adminPort must differ": (
        {"port": 9000, "adminPort": 9901},
        {"port": 9000, "adminPort": 9000},
    ),
    EMPTY_SELECTOR: (
        {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
        {"matchLabels": {}, "matchExpressions": []},
    ),
    "list users or groups (omit subjects to mean anyone)": (
        {"groups": ["support"]},
        {"users": [], "groups": []},
    ),
    "set exactly one of tools, resources or prompts": (
        {**ALLOW, "prompts": ["p"], "tools": []},
        {**ALLOW, "tools": ["t"], "resources": ["file:///x"]},
    ),
    "annotations only apply to tools": (
        {**DENY, "tools": ["*"], "annotations": {"destructiveHint": True}},
        {**DENY, "resources": ["*"], "annotations": {"destructiveHint": True}},
    ),
    "unknown annotation (known: readOnlyHint, destructiveHint, idempotentHint, openWorldHint)": (
        {**DENY, "tools": ["*"], "annotations": {"readOnlyHint": False}},
        {**DENY, "tools": ["*"], "annotations": {"dangerous": True}},
    ),
    "requireConsent only applies to Allow rules": (
        {**DENY, "tools": ["t"], "requireConsent": False},
        {**DENY, "tools": ["t"], "requireConsent": True},
    ),
    "rateLimit only applies to Allow rules": (
        {**ALLOW, "tools": ["t"], "rateLimit": {"calls": 1, "per": "1m"}},
        {**DENY, "tools": ["t"], "rateLimit": {"calls": 1, "per": "1m"}},
    ),
    "rule names must be unique within the policy": (
        {"rules": [{"name": "a"}, {"name": "b"}]},
        {"rules": [{"name": "a"}, {"name": "b"}, {"name": "a"}]},
    ),
    "grant at least one of tools, resources or prompts": (
        {"resources": ["file:///x"]},
        {"tools": [], "prompts": []},
    ),
}


def _rules() -> list[dict[str, str]]:
    found: list[dict[str, str]] = []

    def walk(node: dict[str, Any]) -> None:
        found.extend(node.get("x-kubernetes-validations", []))
        for sub in node.get("properties", {}).values():
            walk(sub)
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                walk(node[key])

    for definition in crds():
        walk(definition["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    return found


RULES = _rules()


def test_every_rule_has_verdicts_to_check() -> None:
    assert sorted(rule["message"] for rule in RULES) == sorted(VERDICTS)


@pytest.mark.parametrize("rule", RULES, ids=[r["message"][:40] for r in RULES])
def test_rule_compiles_and_reads_only_self(rule: dict[str, str]) -> None:
    program = cel.compile(rule["rule"])
    assert "self" in program.variables()
    assert set(program.variables()) - {"self"} <= {"k", "r", "s", "t"}


@pytest.mark.parametrize("rule", RULES, ids=[r["message"][:40] for r in RULES])
def test_rule_accepts_the_valid_node_and_refuses_the_invalid_one(rule: dict[str, str]) -> None:
    valid, invalid = VERDICTS[rule["message"]]
    assert cel.evaluate(rule["rule"], {"self": valid}) is True
    assert cel.evaluate(rule["rule"], {"self": invalid}) is False


def _example(kind: str) -> dict[str, Any]:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document["kind"] == kind:
                return copy.deepcopy(document)
    raise AssertionError(kind)


def _rule_of(document: dict[str, Any], index: int) -> dict[str, Any]:
    rule: dict[str, Any] = document["spec"]["rules"][index]
    return rule


Mutation = Callable[[dict[str, Any]], None]

REFUSED: list[tuple[str, Mutation, str]] = [
    ("MCPServer", lambda d: d["spec"].update(gateway={"port": 9000, "adminPort": 9000}), "differ"),
    # adminPort is defaulted to 9901 before the rule runs, as in the API server.
    ("MCPServer", lambda d: d["spec"].update(gateway={"port": 9901}), "differ"),
    ("MCPServer", lambda d: d["spec"].update(toolPinning="Sometimes"), "is not one of"),
    ("MCPServer", lambda d: d["spec"].update(selector={}), "empty selector"),
    ("MCPServer", lambda d: d["spec"].update(selector={"matchLabels": {}}), "empty selector"),
    ("MCPServer", lambda d: d["spec"]["upstream"].update(path="mcp"), "does not match"),
    ("MCPServer", lambda d: d["spec"].update(toolPining="Audit"), 'unknown field "toolPining"'),
    ("MCPServer", lambda d: d["spec"].pop("authentication"), "'authentication' is a required"),
    ("AgentPolicy", lambda d: _rule_of(d, 0).update(resources=["x"]), "exactly one"),
    ("AgentPolicy", lambda d: _rule_of(d, 0).pop("tools"), "exactly one"),
    ("AgentPolicy", lambda d: _rule_of(d, 2).update(effect="Maybe"), "is not one of"),
    ("AgentPolicy", lambda d: _rule_of(d, 1).update(effect="Deny"), "requireConsent only"),
    ("AgentPolicy", lambda d: _rule_of(d, 1).update(requireConsent=False, effect="Deny"), "rate"),
    ("AgentPolicy", lambda d: _rule_of(d, 4).update(annotations={"readOnlyHint": True}), "tools"),
    ("AgentPolicy", lambda d: _rule_of(d, 2).update(annotations={"x": True}), "unknown annotation"),
    ("AgentPolicy", lambda d: _rule_of(d, 1).update(name="read"), "unique"),
    ("AgentPolicy", lambda d: _rule_of(d, 1).update(name="Write_It"), "does not match"),
    ("AgentPolicy", lambda d: _rule_of(d, 1)["rateLimit"].update(per="1w"), "does not match"),
    ("AgentPolicy", lambda d: d["spec"].update(subjects={}), "list users or groups"),
    ("AgentPolicy", lambda d: d["spec"].update(agents=[]), "should be non-empty"),
    ("AgentPolicy", lambda d: d["spec"].update(rules=[]), "should be non-empty"),
    ("ConsentGrant", lambda d: d["spec"].pop("tools"), "at least one"),
    ("ConsentGrant", lambda d: d["spec"].pop("expiresAt"), "'expiresAt' is a required"),
    ("ConsentGrant", lambda d: d["spec"].update(expiresAt="2099-01-01T00:00:00"), "not match"),
    ("ConsentGrant", lambda d: d["spec"].update(expiresAt="next week"), "date-time"),
    ("ConsentGrant", lambda d: d["spec"].update(grantedBy=""), "should be non-empty"),
]


@pytest.mark.parametrize(("kind", "mutate", "reason"), REFUSED, ids=[r for *_, r in REFUSED])
def test_what_the_models_refuse_the_api_server_refuses(
    kind: str, mutate: Mutation, reason: str
) -> None:
    document = _example(kind)
    assert admit(document) == []
    mutate(document)
    errors = admit(document)
    assert any(reason in error for error in errors), errors
    with pytest.raises(ResourceError):
        parse(document)


@pytest.mark.parametrize(
    "document",
    [
        {
            "apiVersion": "remit.dev/v1alpha1",
            "kind": "MCPServer",
            "metadata": {"name": "minimal"},
            "spec": {
                "selector": {"matchLabels": {"app": "a"}},
                "authentication": {"issuer": "https://idp", "audience": "a"},
            },
        },
        {
            "apiVersion": "remit.dev/v1alpha1",
            "kind": "AgentPolicy",
            "metadata": {"name": "minimal"},
            "spec": {"servers": ["*"], "agents": ["*"], "rules": [{**DENY, "tools": ["*"]}]},
        },
        {
            "apiVersion": "remit.dev/v1alpha1",
            "kind": "ConsentGrant",
            "metadata": {"name": "minimal"},
            "spec": {
                "subject": "s",
                "agent": "a",
                "server": "f",
                "prompts": ["p"],
                "expiresAt": "2030-01-01T00:00:00+02:00",
                "grantedBy": "s",
            },
            "status": {"phase": "Active", "conditions": [{"type": "Ready", "status": "True"}]},
        },
    ],
    ids=["MCPServer", "AgentPolicy", "ConsentGrant"],
)
def test_minimal_resources_are_admitted_by_both(document: dict[str, Any]) -> None:
    assert admit(document) == []
    parse(document)
