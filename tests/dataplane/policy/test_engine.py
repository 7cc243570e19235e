"""Engine.decide: every rule of the decision, one test (or table) per rule."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from remit.api.loader import load
from remit.errors import BundleError
from remit.policy import engine as engine_module
from remit.policy.compiler import compile_bundle
from remit.policy.engine import Engine
from remit.policy.expressions import Condition
from remit.policy.index import RuleIndex, effective_hints
from remit.policy.request import Identity, Request
from tests.support.policies import (
    EARLIER,
    LATER,
    NOW,
    bundle_for,
    call,
    engine_for,
    grant,
    policy,
    rule,
    who,
)

EXAMPLES = Path(__file__).parents[3] / "examples"
READ = rule("read", tools=["read_*"])


def _effect(engine: Engine, request: Request) -> tuple[str, str]:
    decision = engine.decide(request)
    return decision.effect, decision.reason


# -- which policies apply: servers, agents, subjects (the intersection) ----------------------


@pytest.mark.parametrize(
    ("servers", "effect"),
    [(["files"], "allow"), (["*"], "allow"), (["fi*"], "allow"), (["tickets"], "deny")],
)
def test_policy_applies_only_to_the_servers_it_names(servers: list[str], effect: str) -> None:
    engine = engine_for(policy("p", READ, servers=servers))
    assert engine.decide(call("read_file")).effect == effect


def test_policy_of_another_namespace_never_applies() -> None:
    engine = engine_for(policy("p", READ, namespace="other", servers=["*"]))
    assert _effect(engine, call("read_file")) == ("deny", "no_matching_rule")


@pytest.mark.parametrize(
    ("agents", "agent", "effect"),
    [
        (["support-bot"], "support-bot", "allow"),
        (["support-*"], "support-bot", "allow"),
        (["*"], "anything", "allow"),
        (["support-bot"], "support-bot-2", "deny"),
        (["triage-*"], "support-bot", "deny"),
        (["Support-Bot"], "support-bot", "deny"),  # case-sensitive
    ],
)
def test_policy_applies_only_to_its_agents(agents: list[str], agent: str, effect: str) -> None:
    engine = engine_for(policy("p", READ, agents=agents))
    decision = engine.decide(call("read_file", identity=who(agent=agent)))
    assert decision.effect == effect


@pytest.mark.parametrize(
    ("users", "groups", "subject", "member_of", "effect"),
    [
        (None, None, "anyone@anywhere", (), "allow"),  # subjects omitted: anyone
        (["*@example.com"], None, "alice@example.com", (), "allow"),
        (["*@example.com"], None, "alice@example.com.evil.org", (), "deny"),
        (["alice@example.com"], None, "bob@example.com", (), "deny"),
        (None, ["support"], "bob@other.org", ("support",), "allow"),
        (None, ["support"], "bob@other.org", ("sales",), "deny"),
        (None, ["support"], "bob@other.org", (), "deny"),
        (["*@example.com"], ["support"], "bob@other.org", ("support", "x"), "allow"),
        (["*@example.com"], ["support"], "bob@other.org", ("sales",), "deny"),
    ],
)
def test_policy_applies_only_for_its_subjects(
    users: list[str] | None,
    groups: list[str] | None,
    subject: str,
    member_of: tuple[str, ...],
    effect: str,
) -> None:
    engine = engine_for(policy("p", READ, users=users, groups=groups))
    decision = engine.decide(call("read_file", identity=who(subject, groups=member_of)))
    assert decision.effect == effect


def test_one_engine_answers_each_caller_and_tool_hint_for_itself() -> None:
    # The rules applicable to a caller are cached per bundle: the same engine, asked in turn
    # for callers and hints that differ, must answer each as a fresh engine would.
    destructive = rule(
        "no-destructive", effect="Deny", tools=["*"], annotations={"destructiveHint": True}
    )
    engine = engine_for(policy("p", READ, destructive, users=["*@example.com"], groups=["support"]))
    asks = [
        (who("alice@example.com"), {"readOnlyHint": True}, "allow"),
        (who("bob@other.org"), {"readOnlyHint": True}, "deny"),
        (who("bob@other.org", groups=("support",)), {"readOnlyHint": True}, "allow"),
        (who("bob@other.org", groups=["support"]), {"readOnlyHint": True}, "allow"),
        (who("alice@example.com"), {}, "deny"),  # undeclared hints: possibly destructive
        (who("alice@example.com", "other-bot"), {"readOnlyHint": True}, "deny"),
    ]
    for _ in range(2):
        for identity, hints, effect in asks:
            request = call("read_file", identity=identity, annotations=hints)
            assert engine.decide(request).effect == effect
            fresh = engine_for(
                policy("p", READ, destructive, users=["*@example.com"], groups=["support"])
            )
            assert fresh.decide(request) == engine.decide(request)


def test_servers_agents_and_subjects_must_all_match() -> None:
    engine = engine_for(
        policy("p", READ, servers=["files"], agents=["support-bot"], users=["alice@example.com"])
    )
    assert engine.decide(call("read_file")).allowed
    assert not engine.decide(call("read_file", identity=who(agent="other"))).allowed
    assert not engine.decide(call("read_file", identity=who("bob@example.com"))).allowed
    assert (
        not engine_for(
            policy(
                "p", READ, servers=["tickets"], agents=["support-bot"], users=["alice@example.com"]
            )
        )
        .decide(call("read_file"))
        .allowed
    )


# -- rules: matching, deny overrides, default deny -------------------------------------------


@pytest.mark.parametrize(
    ("patterns", "tool", "matches"),
    [
        (["read_file"], "read_file", True),
        (["read_*"], "read_file", True),
        (["read_?ile"], "read_file", True),
        (["read_[fx]ile"], "read_file", True),
        (["read_*"], "unread_file", False),
        (["read_file"], "read_file2", False),
        (["read_file"], "READ_FILE", False),
        (["a", "b", "read_*"], "read_x", True),
        (["*"], "anything", True),
    ],
)
def test_tool_name_globs(patterns: list[str], tool: str, matches: bool) -> None:
    engine = engine_for(policy("p", rule("r", tools=patterns)))
    assert engine.decide(call(tool)).allowed is matches


def test_no_policy_at_all_denies() -> None:
    decision = engine_for().decide(call("read_file"))
    assert (decision.effect, decision.reason, decision.rules) == ("deny", "no_matching_rule", ())
    assert "support-bot" in decision.message
    assert "alice@example.com" in decision.message


def test_unmatched_tool_denies_by_default() -> None:
    decision = engine_for(policy("p", READ)).decide(call("write_file"))
    assert (decision.effect, decision.reason) == ("deny", "no_matching_rule")


def test_deny_overrides_allow_in_the_same_policy() -> None:
    engine = engine_for(policy("p", READ, rule("no", "Deny", tools=["read_secret"])))
    decision = engine.decide(call("read_secret"))
    assert (decision.effect, decision.reason, decision.rules) == (
        "deny",
        "denied_by_rule",
        ("agents/p#no",),
    )
    assert "agents/p#no" in decision.message
    assert engine.decide(call("read_file")).allowed


def test_deny_overrides_allow_across_policies_whatever_their_names() -> None:
    for deny_name in ("a-guard", "z-guard"):
        engine = engine_for(
            policy("m-allow", READ),
            policy(deny_name, rule("no", "Deny", tools=["*"]), agents=["*"]),
        )
        decision = engine.decide(call("read_file"))
        assert (decision.effect, decision.reason) == ("deny", "denied_by_rule")
        assert decision.rules == (f"agents/{deny_name}#no",)


def test_deny_overrides_consent_and_grants() -> None:
    engine = engine_for(
        policy("p", rule("w", tools=["write_file"], consent=True)),
        policy("guard", rule("no", "Deny", tools=["write_file"])),
        grant("g"),
    )
    assert _effect(engine, call("write_file")) == ("deny", "denied_by_rule")


def test_conditional_deny_applies_only_when_its_condition_holds() -> None:
    engine = engine_for(
        policy(
            "p",
            READ,
            rule("secrets", "Deny", tools=["read_*"], when='args.path.startsWith("/secret/")'),
        )
    )
    assert _effect(engine, call("read_file", {"path": "/secret/k"})) == ("deny", "denied_by_rule")
    assert _effect(engine, call("read_file", {"path": "/data/k"})) == ("allow", "allowed")


def test_allow_condition_must_hold() -> None:
    engine = engine_for(policy("p", rule("small", tools=["comment"], when="size(args.body) < 5")))
    assert engine.decide(call("comment", {"body": "hi"})).allowed
    assert _effect(engine, call("comment", {"body": "too long"})) == ("deny", "no_matching_rule")


def test_all_matching_allow_rules_are_named() -> None:
    engine = engine_for(
        policy("a", READ, rule("file", tools=["read_file"])),
        policy("b", rule("any", tools=["*"]), agents=["*"]),
    )
    decision = engine.decide(call("read_file"))
    assert decision.allowed
    assert set(decision.rules) == {"agents/a#read", "agents/a#file", "agents/b#any"}
    assert decision.message.startswith("tool 'read_file' allowed by rule agents/")


# -- annotations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotations", "denied"),
    [
        ({}, True),  # MCP defaults: not read-only, destructive
        ({"readOnlyHint": True}, False),
        ({"destructiveHint": False}, False),
        ({"destructiveHint": True}, True),
        ({"readOnlyHint": True, "destructiveHint": True}, False),  # read-only wins
        ({"destructiveHint": "false"}, True),  # not a bool: fail closed
    ],
)
def test_annotation_rules_use_mcp_defaults(annotations: dict[str, Any], denied: bool) -> None:
    engine = engine_for(
        policy(
            "p",
            rule("all", tools=["*"]),
            rule("destructive", "Deny", tools=["*"], annotations={"destructiveHint": True}),
        )
    )
    decision = engine.decide(call("do_it", annotations=annotations))
    assert (decision.reason == "denied_by_rule") is denied
    assert decision.allowed is not denied


def test_annotation_allow_rule_needs_every_listed_hint() -> None:
    engine = engine_for(
        policy(
            "p", rule("ro", tools=["*"], annotations={"readOnlyHint": True, "openWorldHint": False})
        )
    )
    assert engine.decide(
        call("x", annotations={"readOnlyHint": True, "openWorldHint": False})
    ).allowed
    assert not engine.decide(call("x", annotations={"readOnlyHint": True})).allowed
    assert not engine.decide(call("x", annotations={"openWorldHint": False})).allowed


def test_effective_hints() -> None:
    assert effective_hints({}) == {
        "readOnlyHint": False,
        "destructiveHint": True,
        "idempotentHint": False,
        "openWorldHint": True,
    }
    assert effective_hints({"readOnlyHint": True})["destructiveHint"] is False
    assert effective_hints({"idempotentHint": True})["idempotentHint"] is True


# -- consent --------------------------------------------------------------------------------

CONSENT = policy(
    "p",
    rule("w", tools=["write_file"], consent=True, rate_limit={"calls": 3, "per": "1m"}),
    rule("pr", prompts=["summarise"], consent=True),
    rule("rs", resources=["file:///private/*"], consent=True),
)


def test_consent_rule_without_grant_denies_with_consent_required() -> None:
    decision = engine_for(CONSENT).decide(call("write_file"))
    assert (decision.effect, decision.reason, decision.rules) == (
        "deny",
        "consent_required",
        ("agents/p#w",),
    )
    assert decision.grant is None
    assert decision.rate_limits == ()
    assert "agents/files" in decision.message
    assert "ConsentGrant" in decision.message


def test_active_grant_allows_and_is_cited() -> None:
    engine = engine_for(CONSENT, grant("g", uid="uid-1", resource_version="42"))
    decision = engine.decide(call("write_file"))
    assert (decision.effect, decision.reason, decision.rules) == (
        "allow",
        "allowed",
        ("agents/p#w",),
    )
    assert decision.grant is not None
    assert (decision.grant.name, decision.grant.uid, decision.grant.resource_version) == (
        "agents/g",
        "uid-1",
        "42",
    )
    assert decision.grant.expires_at == LATER
    assert decision.grant.granted_by == "alice@example.com"
    assert "under consent agents/g" in decision.message
    assert [r.rule for r in decision.rate_limits] == ["agents/p#w"]
    assert decision.rate_limits[0].limit.calls == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"subject": "bob@example.com"},  # someone else's consent
        {"agent": "other-bot"},  # consent to another agent
        {"tools": ["write_other"]},  # another tool
        {"server": "tickets"},  # another server
        {"namespace": "other"},  # another namespace
        {"prompts": ["summarise"], "tools": ()},  # another kind of target
    ],
)
def test_grant_must_match_subject_agent_server_and_target(kwargs: dict[str, Any]) -> None:
    engine = engine_for(CONSENT, grant("g", **kwargs))
    assert _effect(engine, call("write_file")) == ("deny", "consent_required")


def test_grant_tool_globs_cover_tools() -> None:
    engine = engine_for(CONSENT, grant("g", tools=["write_*"]))
    assert engine.decide(call("write_file")).allowed


def test_grants_cover_resources_and_prompts() -> None:
    engine = engine_for(
        CONSENT, grant("g", tools=(), resources=["file:///private/a*"], prompts=["summarise"])
    )
    assert engine.decide(call("file:///private/alice", method="resources/read")).allowed
    assert _effect(engine, call("file:///private/bob", method="resources/read")) == (
        "deny",
        "consent_required",
    )
    assert engine.decide(call("summarise", method="prompts/get")).allowed
    assert not engine.decide(call("write_file")).allowed


def test_grant_when_must_hold() -> None:
    engine = engine_for(CONSENT, grant("g", when='args.path.startsWith("/data/alice/")'))
    assert engine.decide(call("write_file", {"path": "/data/alice/x"})).allowed
    decision = engine.decide(call("write_file", {"path": "/data/bob/x"}))
    assert (decision.effect, decision.reason) == ("deny", "consent_required")


def test_one_of_several_grants_suffices() -> None:
    engine = engine_for(
        CONSENT,
        grant("narrow", when='args.path == "/a"'),
        grant("other", when='args.path == "/b"'),
    )
    decision = engine.decide(call("write_file", {"path": "/b"}))
    assert decision.grant is not None
    assert decision.grant.name == "agents/other"


def test_consent_rule_condition_must_hold_before_grants_are_looked_at() -> None:
    engine = engine_for(
        policy(
            "p",
            rule("w", tools=["write_file"], consent=True, when='args.path.startsWith("/data/")'),
        ),
        grant("g"),
    )
    assert engine.decide(call("write_file", {"path": "/data/x"})).allowed
    assert _effect(engine, call("write_file", {"path": "/etc/x"})) == ("deny", "no_matching_rule")


def test_plain_allow_needs_no_consent_even_beside_a_consent_rule() -> None:
    engine = engine_for(CONSENT, policy("open", rule("w", tools=["write_file"])))
    decision = engine.decide(call("write_file"))
    assert decision.allowed
    assert decision.rules == ("agents/open#w",)
    assert decision.grant is None


def test_grant_without_a_consent_rule_allows_nothing() -> None:
    engine = engine_for(policy("p", READ), grant("g"))
    assert _effect(engine, call("write_file")) == ("deny", "no_matching_rule")


def test_grant_expired_or_revoked_at_compile_time_never_allows() -> None:
    for expired in (
        grant("g", expires_at=EARLIER),
        grant("g", expires_at=NOW),
        grant("g", revoked=True),
    ):
        engine = engine_for(CONSENT, expired)
        assert _effect(engine, call("write_file")) == ("deny", "consent_required")


def test_grant_that_expires_after_compiling_stops_allowing_at_its_expiry() -> None:
    expiry = NOW + timedelta(minutes=5)
    engine = engine_for(CONSENT, grant("g", expires_at=expiry))
    assert engine.decide(call("write_file", now=expiry - timedelta(microseconds=1))).allowed
    assert _effect(engine, call("write_file", now=expiry)) == ("deny", "consent_required")
    assert _effect(engine, call("write_file", now=expiry + timedelta(days=1))) == (
        "deny",
        "consent_required",
    )


def test_grant_condition_error_denies_with_expression_error() -> None:
    engine = engine_for(CONSENT, grant("g", when='args.path.startsWith("/")'))
    decision = engine.decide(call("write_file", {}))
    assert (decision.effect, decision.reason) == ("deny", "expression_error")
    assert "agents/g" in decision.message


def test_grant_condition_error_does_not_hide_another_valid_grant() -> None:
    engine = engine_for(
        CONSENT, grant("a-broken", when='args.path.startsWith("/")'), grant("b-plain")
    )
    decision = engine.decide(call("write_file", {}))
    assert decision.allowed
    assert decision.grant is not None
    assert decision.grant.name == "agents/b-plain"


# -- errors deny ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "args"),
    [
        ('args.path.startsWith("/")', {}),  # missing key
        ('args.path.startsWith("/")', {"path": 7}),  # wrong type
        ("args.n", {"n": 1}),  # not a bool
        ("args.n == 1", {"n": {1, 2}}),  # cannot be bound into CEL
        ("args.n / args.d > 0", {"n": 1, "d": 0}),  # division by zero
    ],
)
def test_condition_errors_deny_with_expression_error(when: str, args: dict[str, Any]) -> None:
    for effect in ("Allow", "Deny"):
        engine = engine_for(policy("p", rule("r", effect, tools=["t"], when=when), READ))
        decision = engine.decide(call("t", args))
        assert (decision.effect, decision.reason, decision.rules) == (
            "deny",
            "expression_error",
            ("agents/p#r",),
        )
        assert "condition failed" in decision.message


def test_condition_error_denies_even_when_another_rule_allows() -> None:
    engine = engine_for(
        policy("p", rule("open", tools=["t"]), rule("broken", tools=["t"], when="args.x == 1"))
    )
    assert _effect(engine, call("t", {})) == ("deny", "expression_error")


def test_odd_arguments_deny_instead_of_raising() -> None:
    engine = engine_for(policy("p", rule("r", tools=["t"], when="args.x == 1")))
    odd = Request(identity=who(), method="tools/call", name="t", arguments=None, now=NOW)  # type: ignore[arg-type]
    decision = engine.decide(odd)
    assert (decision.effect, decision.reason) == ("deny", "expression_error")


def test_an_unforeseen_failure_inside_decide_is_an_internal_error_deny(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = engine_for(policy("p", READ))
    assert engine.decide(call("read_file")).allowed

    def bug(self: Engine, request: Request) -> Any:
        raise KeyError("a bug in the engine")

    monkeypatch.setattr(Engine, "_decide", bug)
    decision = engine.decide(call("read_file"))
    assert (decision.effect, decision.reason) == ("deny", "internal_error")
    assert "a bug in the engine" in decision.message


# -- CEL variables --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "when",
    [
        'subject.id == "alice@example.com"',
        'subject.issuer == "https://idp.example.com/realms/acme"',
        '"support" in subject.groups',
        'subject.claims.tier == "gold" && subject.claims.level > 2',
        'agent.id == "support-bot"',
        'agent.chain == ["orchestrator", "planner"]',
        'tool.name == "t"',
        "tool.annotations.readOnlyHint && !tool.annotations.destructiveHint",
        'tool.annotations.title == "T"',
        'args.path == "/data/x" && args.n == 3 && args.tags[1] == "b" && args.opt.deep',
        'server.name == "files" && server.namespace == "agents"',
        'now == timestamp("2026-03-02T10:00:00Z") && now.getHours() == 10',
        "now.getDayOfWeek() == 1",  # Monday
    ],
)
def test_cel_variables(when: str) -> None:
    engine = engine_for(policy("p", rule("r", tools=["t"], when=when)))
    identity = who(
        groups=["support"],
        chain=["orchestrator", "planner"],
        claims={"tier": "gold", "level": 3},
    )
    request = call(
        "t",
        {"path": "/data/x", "n": 3, "tags": ["a", "b"], "opt": {"deep": True}},
        identity=identity,
        annotations={"readOnlyHint": True, "title": "T"},
    )
    decision = engine.decide(request)
    assert decision.allowed, decision.message
    negated = engine_for(policy("p", rule("r", tools=["t"], when=f"!({when})")))
    assert not negated.decide(request).allowed


def test_now_in_another_time_zone_is_the_same_instant() -> None:
    engine = engine_for(policy("p", rule("r", tools=["t"], when="now.getHours() == 10")))
    plus_five = NOW.astimezone(timezone(timedelta(hours=5)))
    assert engine.decide(call("t", now=plus_five)).allowed


def test_resource_and_prompt_variables() -> None:
    engine = engine_for(
        policy(
            "p",
            rule("r", resources=["file:///*"], when='resource.uri.endsWith(".md")'),
            rule("q", prompts=["*"], when='prompt.name == "summarise"'),
        )
    )
    assert engine.decide(call("file:///a.md", method="resources/read")).allowed
    assert not engine.decide(call("file:///a.txt", method="resources/read")).allowed
    assert engine.decide(call("summarise", method="prompts/get")).allowed
    assert not engine.decide(call("other", method="prompts/get")).allowed


# -- resources, prompts and the method table ------------------------------------------------


def test_resources_and_prompts_are_decided_like_tools() -> None:
    engine = engine_for(
        policy(
            "p",
            rule("docs", resources=["file:///data/*"]),
            rule("no-secrets", "Deny", resources=["file:///data/secrets/*"]),
            rule("sum", prompts=["summarise_*"]),
        )
    )
    assert engine.decide(call("file:///data/readme.md", method="resources/read")).allowed
    for method in ("resources/subscribe", "resources/unsubscribe"):
        assert engine.decide(call("file:///data/readme.md", method=method)).allowed
    assert _effect(engine, call("file:///data/secrets/key", method="resources/read")) == (
        "deny",
        "denied_by_rule",
    )
    assert _effect(engine, call("file:///etc/passwd", method="resources/read")) == (
        "deny",
        "no_matching_rule",
    )
    assert engine.decide(call("summarise_ticket", method="prompts/get")).allowed
    assert not engine.decide(call("other", method="prompts/get")).allowed


def test_targets_of_different_kinds_never_match_each_other() -> None:
    engine = engine_for(policy("p", rule("t", tools=["same"])))
    assert not engine.decide(call("same", method="resources/read")).allowed
    assert not engine.decide(call("same", method="prompts/get")).allowed
    engine = engine_for(policy("p", rule("q", prompts=["same"])))
    assert not engine.decide(call("same")).allowed


@pytest.mark.parametrize(
    "method",
    [
        "initialize",
        "ping",
        "server/discover",
        "notifications/initialized",
        "notifications/cancelled",
    ],
)
def test_lifecycle_methods_are_allowed(method: str) -> None:
    decision = engine_for().decide(call("", method=method))
    assert (decision.effect, decision.reason, decision.filter_results) == (
        "allow",
        "allowed",
        False,
    )


@pytest.mark.parametrize(
    "method", ["tools/list", "resources/list", "resources/templates/list", "prompts/list"]
)
def test_list_methods_are_allowed_and_filtered(method: str) -> None:
    engine = engine_for()
    decision = engine.decide(call("", method=method))
    assert (decision.effect, decision.filter_results) == ("allow", True)
    assert engine.list_target(method) in {"tool", "resource", "prompt"}
    assert engine.list_target("tools/call") is None


@pytest.mark.parametrize(
    "method",
    [
        "sampling/createMessage",
        "tools/cal",
        "",
        "TOOLS/CALL",
        "notifications",
    ],
)
def test_unknown_methods_are_denied(method: str) -> None:
    engine = engine_for(policy("p", rule("all", tools=["*"])))
    decision = engine.decide(call("x", method=method))
    assert (decision.effect, decision.reason) == ("deny", "method_not_allowed")


@pytest.mark.parametrize("method", ["tools/call", "resources/read", "prompts/get"])
def test_decided_method_without_a_name_is_invalid(method: str) -> None:
    engine = engine_for(policy("p", rule("all", tools=["*"])))
    decision = engine.decide(call("", method=method))
    assert (decision.effect, decision.reason) == ("deny", "invalid_request")


# -- explanation ----------------------------------------------------------------------------


def test_decision_document_explains_itself() -> None:
    bundle = bundle_for(CONSENT, grant("g", uid="u", resource_version="9"))
    decision = Engine(bundle).decide(call("write_file"))
    document = decision.document()
    assert document == {
        "effect": "allow",
        "reason": "allowed",
        "message": decision.message,
        "rules": ["agents/p#w"],
        "grant": {
            "name": "agents/g",
            "uid": "u",
            "resourceVersion": "9",
            "expiresAt": "2026-04-01T10:00:00Z",
            "grantedBy": "alice@example.com",
            "reason": "ticket for g",
        },
        "bundle": bundle.digest,
    }
    denied = Engine(bundle).decide(call("nothing"))
    assert denied.document()["grant"] is None
    assert denied.document()["bundle"] == bundle.digest


def test_every_decision_names_the_bundle_digest() -> None:
    bundle = bundle_for(policy("p", READ))
    engine = Engine(bundle)
    for request in (call("read_file"), call("x"), call("", method="ping"), call("", method="x")):
        assert engine.decide(request).bundle == bundle.digest


# -- indexing -------------------------------------------------------------------------------


def test_lookup_returns_only_rules_for_the_agent_and_name() -> None:
    unrelated = [
        policy(f"other-{i}", rule("r", tools=["read_*", f"tool_{i}"]), agents=[f"agent-{i}"])
        for i in range(200)
    ]
    bundle = bundle_for(policy("mine", READ), *unrelated)
    index = RuleIndex(bundle)
    assert [e.rule.id for e in index.lookup("support-bot", "tool", "read_file")] == [
        "agents/mine#read"
    ]
    assert [e.rule.id for e in index.lookup("agent-7", "tool", "tool_7")] == ["agents/other-7#r"]
    assert index.lookup("agent-7", "tool", "tool_8") == ()
    assert index.lookup("agent-7", "resource", "read_file") == ()


def test_cached_lookups_do_not_leak_between_agents_or_subjects() -> None:
    engine = engine_for(
        policy("bots", READ, agents=["support-bot"], users=["alice@example.com"]),
    )
    assert engine.decide(call("read_file")).allowed
    assert not engine.decide(call("read_file", identity=who(agent="intruder"))).allowed
    assert not engine.decide(call("read_file", identity=who("mallory@example.com"))).allowed
    assert engine.decide(call("read_file")).allowed


def test_callers_long_names_are_decided_but_not_kept_in_the_cache() -> None:
    # A name comes from the caller, bounded only by the body limit: the per-bundle cache of
    # applicable rules must not keep megabyte keys alive (8,192 of them would pin gigabytes).
    engine = engine_for(policy("p", READ, users=["alice@example.com"], groups=["support"]))
    assert engine.decide(call("read_file")).allowed  # an ordinary call is cached
    assert len(engine._applicable_cache) == 1
    huge = "x" * (1 << 20)
    asks = [
        (call("read_" + huge), True),
        (call("write_" + huge), False),
        (call("read_file", identity=who("alice@example.com", agent=huge)), False),
        (call("read_file", identity=who("b" * 2000, groups=["support"])), True),
        (
            call("read_file", identity=who("bob@x.org", groups=["g" * 600, "support", "h" * 600])),
            True,
        ),
        (call("read_file", identity=who("bob@x.org", groups=["g" * 600, "h" * 600])), False),
    ]
    for request, allowed in asks * 2:
        held = [sys.getrefcount(request.name), sys.getrefcount(request.identity.agent)]
        assert engine.decide(request).allowed is allowed
        # no cache (the engine's, the rule index's) keeps the long name or agent alive
        assert [sys.getrefcount(request.name), sys.getrefcount(request.identity.agent)] == held
        fresh = engine_for(policy("p", READ, users=["alice@example.com"], groups=["support"]))
        assert fresh.decide(request) == engine.decide(request)
    assert len(engine._applicable_cache) == 1  # none of the long keys was kept


def test_the_applicable_rules_cache_holds_at_most_its_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine_module, "_CACHE_SIZE", 2)
    engine = engine_for(policy("p", READ))
    for _ in range(2):
        for name in ("read_a", "read_b", "write_c", "read_d"):
            assert engine.decide(call(name)).allowed is name.startswith("read_")
            assert len(engine._applicable_cache) <= 2
    assert [key[4] for key in engine._applicable_cache] == ["write_c", "read_d"]  # the newest


def test_another_agents_conditions_are_never_evaluated(monkeypatch: pytest.MonkeyPatch) -> None:
    evaluated: list[str] = []
    original = Condition.evaluate

    def counting(self: Condition, bindings: Any) -> bool:
        evaluated.append(self.source)
        return original(self, bindings)

    monkeypatch.setattr(Condition, "evaluate", counting)
    engine = engine_for(
        policy("mine", rule("r", tools=["read_*"], when="args.n == 1")),
        policy("theirs", rule("r", tools=["read_*"], when="args.missing == 1"), agents=["x"]),
    )
    assert engine.decide(call("read_file", {"n": 1})).allowed
    assert evaluated == ["args.n == 1"]  # the other agent's (broken) condition never ran
    evaluated.clear()
    other = engine.decide(call("read_file", {"n": 1}, identity=who(agent="x")))
    assert evaluated == ["args.missing == 1"]  # and it is the one that runs for its agent
    assert other.reason == "expression_error"


# -- the examples ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def examples() -> dict[str, Engine]:
    loaded = load([EXAMPLES])
    return {
        name: Engine(compile_bundle(loaded.resources, name, now=NOW))
        for name in ("files", "tickets")
    }


def _person(subject: str, agent: str, groups: tuple[str, ...] = ()) -> Identity:
    return who(subject, agent, groups=groups)


@pytest.mark.parametrize(
    "case",
    [
        ("files", ("alice@example.com", "support-bot"), "read_file", {"path": "/data/a"},
         {"readOnlyHint": True}, NOW, ("allow", "allowed")),
        ("files", ("alice@example.com", "support-bot"), "read_file", {"path": "/data/secrets/k"},
         {"readOnlyHint": True}, NOW, ("deny", "denied_by_rule")),
        ("files", ("alice@example.com", "support-bot"), "read_file", {"path": "/a"},
         {}, NOW, ("deny", "denied_by_rule")),  # undeclared hints: possibly destructive
        ("files", ("alice@example.com", "support-bot"), "write_file", {"path": "/data/alice/x"},
         {"destructiveHint": False}, NOW, ("allow", "allowed")),
        ("files", ("alice@example.com", "support-bot"), "write_file", {"path": "/data/bob/x"},
         {"destructiveHint": False}, NOW, ("deny", "consent_required")),
        ("files", ("bob@example.com", "support-bot"), "write_file", {"path": "/data/bob/x"},
         {"destructiveHint": False}, NOW, ("deny", "consent_required")),  # expired grant
        ("files", ("eve@evil.org", "support-bot"), "read_file", {"path": "/a"},
         {"readOnlyHint": True}, NOW, ("deny", "no_matching_rule")),
        ("files", ("eve@evil.org", "other-bot"), "read_file", {"path": "/a"},
         {"readOnlyHint": True}, NOW, ("deny", "no_matching_rule")),
        ("tickets", ("dave@example.com", "triage-1", ("support",)), "close_ticket", {},
         {"destructiveHint": False}, NOW, ("allow", "allowed")),
        ("tickets", ("carol@example.com", "triage-1", ("support",)), "close_ticket", {},
         {"destructiveHint": False}, NOW, ("deny", "consent_required")),  # revoked
        ("tickets", ("dave@example.com", "triage-1", ("support",)), "delete_ticket", {},
         {}, NOW, ("deny", "denied_by_rule")),
        ("tickets", ("dave@example.com", "triage-1", ("support",)), "add_comment",
         {"body": "x" * 10}, {}, NOW, ("allow", "allowed")),
        ("tickets", ("dave@example.com", "triage-1", ("support",)), "add_comment",
         {"body": "x" * 2001}, {}, NOW, ("deny", "no_matching_rule")),
        ("tickets", ("dave@example.com", "triage-1", ("support",)), "add_comment", {},
         {}, NOW, ("deny", "expression_error")),
        ("tickets", ("dave@example.com", "triage-1", ("sales",)), "get_ticket", {},
         {}, NOW, ("deny", "no_matching_rule")),
        ("tickets", ("dave@example.com", "triage-1", ("support",)), "bulk_close", {},
         {}, NOW.replace(hour=20), ("deny", "denied_by_rule")),
    ],
)  # fmt: skip
def test_examples(examples: dict[str, Engine], case: tuple[Any, ...]) -> None:
    server, identity, name, args, annotations, at, expected = case
    request = call(name, args, identity=_person(*identity), annotations=annotations, now=at)
    assert _effect(examples[server], request) == expected


def test_example_consent_decision_carries_rate_limit_and_grant(examples: dict[str, Engine]) -> None:
    request = call(
        "write_file", {"path": "/data/alice/notes"}, annotations={"destructiveHint": False}
    )
    decision = examples["files"].decide(request)
    assert decision.grant is not None
    assert decision.grant.name == "agents/alice-support-bot-write"
    assert decision.grant.reason == "SUP-1234"
    assert [(r.rule, r.limit.calls, r.limit.per_seconds) for r in decision.rate_limits] == [
        ("agents/support-bot#write-needs-consent", 30, 60)
    ]
    assert decision.grant.expires_at == datetime(2099, 12, 31, tzinfo=UTC)


def test_a_bundle_whose_condition_does_not_compile_is_refused_as_a_bundle() -> None:
    bundle = bundle_for(policy("p", rule("r", tools=["t"], when="has(args.x)")))
    (compiled,) = bundle.policies
    broken_rule = compiled.rules[0].model_copy(update={"when": "args.x +"})
    broken = bundle.model_copy(
        update={"policies": (compiled.model_copy(update={"rules": (broken_rule,)}),)}
    ).sealed()
    with pytest.raises(BundleError, match="does not compile"):
        Engine(broken)
    bad_grant = bundle_for(grant("g")).grants[0].model_copy(update={"when": "nope == 1"})
    with pytest.raises(BundleError, match="unknown variable 'nope'"):
        Engine(bundle.model_copy(update={"grants": (bad_grant,)}).sealed())


def test_decisions_made_once_per_plan_name_the_rules_that_held_on_each_call() -> None:
    # The engine keeps the decision each set of holding rules produced for a plan (the rules
    # of one caller, tool and hints): a later call whose conditions hold differently must get
    # its own rules and message, never an earlier call's, and the same as a fresh engine's.
    docs = policy(
        "p",
        rule("x", tools=["t"], when="has(args.x)"),
        rule("y", tools=["t"], when="has(args.y)", rate_limit={"calls": 5, "per": "1m"}),
        rule("no-z", "Deny", tools=["t"], when="has(args.z)"),
    )
    engine = engine_for(docs)
    asks = [{"x": 1}, {"y": 1}, {"x": 1, "y": 1}, {}, {"z": 1, "x": 1}, {"y": 2}, {"x": 2}]
    seen = []
    for args in asks * 2:
        decision = engine.decide(call("t", args))
        assert decision == engine_for(docs).decide(call("t", args))
        seen.append((decision.effect, decision.rules, decision.message))
    assert seen[:5] == [
        ("allow", ("agents/p#x",), "tool 't' allowed by rule agents/p#x"),
        ("allow", ("agents/p#y",), "tool 't' allowed by rule agents/p#y"),
        ("allow", ("agents/p#x", "agents/p#y"), "tool 't' allowed by rule agents/p#x"),
        ("deny", (), "no rule allows agent 'support-bot' to use tool 't' for 'alice@example.com'"),
        ("deny", ("agents/p#no-z",), "tool 't' denied by rule agents/p#no-z"),
    ]
    assert seen[7:] == seen[:7]
    assert engine.decide(call("t", {"y": 1})).rate_limits[0].rule == "agents/p#y"
    other = engine.decide(call("t", {}, identity=who("bob@example.com")))
    assert other.message == (
        "no rule allows agent 'support-bot' to use tool 't' for 'bob@example.com'"
    )
