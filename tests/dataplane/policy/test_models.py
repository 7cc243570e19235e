"""The custom resource models: defaults, and errors that name the resource, field and position."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from remit.api.agentpolicy import AgentPolicy
from remit.api.consentgrant import ConsentGrant
from remit.api.loader import load, parse
from remit.api.mcpserver import MCPServer
from remit.errors import LoadError, ResourceError
from tests.support.policies import LATER, NOW, grant, policy, rule, server

EXAMPLES = Path(__file__).parents[3] / "examples"


def _error(document: dict[str, Any]) -> ResourceError:
    with pytest.raises(ResourceError) as caught:
        parse(document)
    return caught.value


def test_policy_when_syntax_error_names_resource_field_expression_and_column() -> None:
    doc = policy(
        "support-bot",
        rule("read", tools=["read_*"]),
        rule("write", tools=["write_file"], when='args.path.startsWith("/data/") &&'),
    )
    error = _error(doc)
    assert error.resource == "agents/support-bot"
    assert error.field == "spec.rules[1].when"
    message = str(error)
    assert message.startswith("agents/support-bot: spec.rules[1].when: invalid CEL at column 34")
    assert message.endswith(""" in 'args.path.startsWith("/data/") &&'""")  # the expression


def test_policy_when_unknown_variable_names_variable_and_its_column() -> None:
    doc = policy("p", rule("r", tools=["t"], when='args.ok && request.path == "/"'))
    error = _error(doc)
    assert error.field == "spec.rules[0].when"
    assert "unknown variable 'request'" in error.reason
    assert "at column 12" in error.reason
    assert "args.ok && request.path" in error.reason


def test_policy_when_unknown_function_is_rejected_at_load_time() -> None:
    doc = policy("p", rule("r", tools=["t"], when='args.name.lowerAscii() == "x"'))
    error = _error(doc)
    assert "unknown function 'lowerAscii'" in error.reason
    assert "at column 11" in error.reason


def test_grant_when_is_compiled_at_load_time() -> None:
    error = _error(grant("g", when="args.path ="))
    assert (error.resource, error.field) == ("agents/g", "spec.when")
    assert "invalid CEL at column" in error.reason
    assert "'args.path ='" in error.reason


def test_empty_when_is_rejected() -> None:
    error = _error(policy("p", rule("r", tools=["t"], when="   ")))
    assert error.field == "spec.rules[0].when"
    assert "empty CEL expression" in error.reason


@pytest.mark.parametrize(
    ("rules", "field", "reason"),
    [
        ([rule("r", tools=["t"]) | {"requireConsnet": True}], "spec.rules[0].requireConsnet",
         "Extra inputs are not permitted"),
        ([rule("r")], "spec.rules[0]", "set exactly one of tools, resources or prompts"),
        ([rule("r", tools=["t"], resources=["file:///x"])], "spec.rules[0]",
         "set exactly one of tools, resources or prompts"),
        ([rule("r", "Deny", tools=["t"], consent=True)], "spec.rules[0]",
         "requireConsent only applies to Allow rules"),
        ([rule("r", "Deny", tools=["t"], rate_limit={"calls": 1, "per": "1m"})], "spec.rules[0]",
         "rateLimit only applies to Allow rules"),
        ([rule("r", resources=["file:///x"], annotations={"readOnlyHint": True})],
         "spec.rules[0]", "annotations only apply to tools"),
        ([rule("r", tools=["t"], annotations={"readonlyHint": True})],
         "spec.rules[0].annotations", "unknown annotation 'readonlyHint'"),
        ([rule("r", "Permit", tools=["t"])], "spec.rules[0].effect", "'Allow' or 'Deny'"),
        ([rule("Bad Name", tools=["t"])], "spec.rules[0].name", "pattern"),
        ([rule("a", tools=["t"]), rule("a", tools=["u"])], "spec.rules[1].name",
         "duplicate rule name 'a'"),
        ([rule("r", tools=["t"], rate_limit={"calls": 0, "per": "1m"})],
         "spec.rules[0].rateLimit.calls", "greater than or equal to 1"),
        ([rule("r", tools=["t"], rate_limit={"calls": 5, "per": "1w"})],
         "spec.rules[0].rateLimit.per", "pattern"),
        ([rule("r", tools=[""])], "spec.rules[0].tools[0]", "at least 1 character"),
        ([], "spec.rules", "at least 1 item"),
    ],
)  # fmt: skip
def test_policy_rule_errors_name_the_field(
    rules: list[dict[str, Any]], field: str, reason: str
) -> None:
    doc = policy("support-bot", *rules)
    error = _error(doc)
    assert error.resource == "agents/support-bot"
    assert error.field == field
    assert reason in error.reason
    assert str(error) == f"agents/support-bot: {field}: {error.reason}"


def test_policy_spec_errors() -> None:
    assert _error(policy("p", rule("r", tools=["t"]), servers=[])).field == "spec.servers"
    assert _error(policy("p", rule("r", tools=["t"]), agents=[])).field == "spec.agents"
    doc = policy("p", rule("r", tools=["t"]))
    doc["spec"]["subjects"] = {}
    error = _error(doc)
    assert error.field == "spec.subjects"
    assert "omit subjects to mean anyone" in error.reason
    doc["spec"]["subjects"] = {"users": ["a"], "roles": ["x"]}
    assert _error(doc).field == "spec.subjects.roles"
    doc = policy("p", rule("r", tools=["t"]))
    doc["spec"]["extra"] = 1
    assert _error(doc).field == "spec.extra"


def test_grant_errors() -> None:
    doc = grant("g")
    doc["spec"]["expiresAt"] = "2026-12-31T00:00:00"
    error = _error(doc)
    assert error.field == "spec.expiresAt"
    assert "time zone" in error.reason
    doc = grant("g")
    del doc["spec"]["expiresAt"]
    assert _error(doc).field == "spec.expiresAt"
    error = _error(grant("g", tools=()))
    assert error.field == "spec"
    assert "grant at least one of tools, resources or prompts" in error.reason
    doc = grant("g")
    doc["spec"]["subject"] = ""
    assert _error(doc).field == "spec.subject"
    doc = grant("g")
    doc["spec"]["scope"] = "all"
    assert _error(doc).field == "spec.scope"


def test_server_errors() -> None:
    assert _error(server(gateway={"port": 9000, "adminPort": 9000})).field == "spec.gateway"
    assert _error(server(toolPinning="enforce")).field == "spec.toolPinning"
    auth = {"issuer": "ftp://idp", "audience": "a"}
    assert _error(server(authentication=auth)).field == "spec.authentication.issuer"
    assert _error(server(upstream={"port": 0})).field == "spec.upstream.port"
    assert _error(server(upstream={"path": "mcp"})).field == "spec.upstream.path"
    assert _error(server(maxBodyBytes=10)).field == "spec.maxBodyBytes"
    assert _error(server(audit={"failurePolicy": "Open"})).field == "spec.audit.failurePolicy"
    doc = server()
    doc["spec"]["authentication"]["requiredScope"] = ["x"]
    assert _error(doc).field == "spec.authentication.requiredScope"


def test_kind_and_api_version_are_checked() -> None:
    doc = policy("p", rule("r", tools=["t"]))
    error = _error(doc | {"kind": "AgentPolicies"})
    assert (error.resource, error.field) == ("agents/p", "kind")
    error = _error(doc | {"apiVersion": "remit.dev/v1"})
    assert error.field == "apiVersion"
    assert "expected 'remit.dev/v1alpha1'" in error.reason
    error = _error({"apiVersion": "remit.dev/v1alpha1", "kind": "AgentPolicy", "metadata": {}})
    assert error.resource == "<input>"


def test_server_defaults() -> None:
    model = parse(server())
    assert isinstance(model, MCPServer)
    spec = model.spec
    assert (spec.upstream.port, spec.upstream.path) == (8080, "/mcp")
    assert (spec.gateway.port, spec.gateway.admin_port) == (9000, 9901)
    assert spec.tool_pinning == "Enforce"
    assert (spec.audit.failure_policy, spec.audit.arguments) == ("Fail", "Digest")
    assert spec.max_body_bytes == 4 * 1024 * 1024
    assert spec.authentication.jwks_uri is None
    assert spec.authentication.required_scopes == []
    assert model.metadata.namespace == "agents"


def test_policy_and_grant_defaults() -> None:
    doc = policy("p", rule("r", tools=["t"]))
    del doc["metadata"]["namespace"]
    model = parse(doc)
    assert isinstance(model, AgentPolicy)
    assert model.ref == "default/p"
    assert model.spec.subjects is None
    only = model.spec.rules[0]
    assert (only.require_consent, only.when, only.rate_limit, only.annotations) == (
        False,
        None,
        None,
        {},
    )
    consent = parse(grant("g", expires_at=LATER))
    assert isinstance(consent, ConsentGrant)
    assert (consent.spec.revoked, consent.spec.reason, consent.spec.when) == (
        False,
        "ticket for g",
        None,
    )
    assert consent.spec.expires_at == LATER
    assert consent.spec.expires_at.tzinfo is not None


def test_rate_limit_window_in_seconds() -> None:
    for per, seconds in (("30s", 30), ("1m", 60), ("2h", 7200), ("1d", 86400)):
        doc = policy("p", rule("r", tools=["t"], rate_limit={"calls": 3, "per": per}))
        model = parse(doc)
        assert isinstance(model, AgentPolicy)
        limit = model.spec.rules[0].rate_limit
        assert limit is not None
        assert limit.per_seconds == seconds


def test_grant_expiry_is_normalised_to_utc_and_phase_follows_it() -> None:
    doc = grant("g")
    doc["spec"]["expiresAt"] = "2026-03-02T12:00:00+02:00"
    model = parse(doc)
    assert isinstance(model, ConsentGrant)
    assert model.spec.expires_at == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert model.spec.expires_at.utcoffset() is not None
    assert model.phase(NOW - timedelta(seconds=1)) == "Active"
    assert model.phase(NOW) == "Expired"  # expiry instant itself is no longer Active
    revoked = parse(grant("r", revoked=True))
    assert isinstance(revoked, ConsentGrant)
    assert revoked.phase(NOW) == "Revoked"
    assert revoked.phase(LATER) == "Revoked"  # revoked wins over expired


def test_models_are_frozen() -> None:
    model = parse(policy("p", rule("r", tools=["t"])))
    with pytest.raises(ValueError, match="frozen"):
        model.metadata = model.metadata  # type: ignore[misc]


def test_examples_load_without_errors() -> None:
    loaded = load([EXAMPLES])
    assert loaded.errors == []
    assert loaded.skipped == []
    assert sorted(r.ref for r in loaded.of(MCPServer)) == ["agents/files", "agents/tickets"]
    assert len(loaded.of(AgentPolicy)) == 3
    assert len(loaded.of(ConsentGrant)) == 4


def test_load_collects_every_error_and_skips_foreign_documents(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n"
        "apiVersion: remit.dev/v1alpha1\nkind: AgentPolicy\n"
        "metadata: {name: bad, namespace: agents}\n"
        "spec: {servers: [files], agents: [a], rules: [{name: r, effect: Allow, tools: [t],"
        " when: 'args.x +'}]}\n---\n"
        "- not a mapping\n"
    )
    sub = tmp_path / "more"
    sub.mkdir()
    (sub / "b.yml").write_text("key: [unclosed\n")
    (sub / "c.yaml").write_text(
        "apiVersion: remit.dev/v1alpha1\nkind: AgentPolicy\n"
        "metadata: {name: ok, namespace: agents}\n"
        "spec: {servers: [files], agents: [a], rules: [{name: r, effect: Allow, tools: [t]}]}\n"
        "---\n"
        "apiVersion: remit.dev/v1alpha1\nkind: AgentPolicy\n"
        "metadata: {name: ok, namespace: agents}\n"
        "spec: {servers: [files], agents: [b], rules: [{name: r, effect: Allow, tools: [t]}]}\n"
    )
    (sub / "notes.txt").write_text("ignored")
    loaded = load([tmp_path, tmp_path / "missing"], recursive=True)
    assert [r.ref for r in loaded.resources] == ["agents/ok"]
    assert len(loaded.skipped) == 1
    assert "(Deployment)" in loaded.skipped[0]
    messages = [str(e) for e in loaded.errors]
    # Errors name the file (and document), the kind and the resource.
    where = f"{tmp_path / 'a.yaml'}#1: AgentPolicy agents/bad"
    assert any(m.startswith(f"{where}: spec.rules[0].when: invalid CEL") for m in messages)
    assert any("expected a mapping" in m for m in messages)
    assert any("b.yml: invalid YAML" in m for m in messages)
    first, second = f"{sub / 'c.yaml'}#0", f"{sub / 'c.yaml'}#1"
    assert (
        f"{second}: AgentPolicy agents/ok: metadata.name: duplicate AgentPolicy (first in {first})"
        in messages
    )
    assert any("missing: no such file or directory" in m for m in messages)
    assert all(isinstance(e, ResourceError | LoadError) for e in loaded.errors)
    assert len(loaded.errors) == 5


def test_directories_are_read_like_kubectl_apply_f_subdirectories_only_when_recursive(
    tmp_path: Path,
) -> None:
    sub = tmp_path / "nested"
    sub.mkdir()
    (sub / "p.yaml").write_text(
        "apiVersion: remit.dev/v1alpha1\nkind: AgentPolicy\n"
        "metadata: {name: deep, namespace: agents}\n"
        "spec: {servers: [files], agents: [b], rules: [{name: r, effect: Allow, tools: [t]}]}\n"
    )
    assert load([tmp_path]).resources == []
    assert [r.ref for r in load([tmp_path], recursive=True).resources] == ["agents/deep"]
