"""List filtering: a tool, resource or prompt is visible iff some call to it could be allowed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from remit.policy.engine import Engine
from tests.support.policies import NOW, call, engine_for, grant, policy, rule, who

TOOLS: list[dict[str, Any]] = [
    {"name": "read_file", "annotations": {"readOnlyHint": True}},
    {"name": "list_dir", "annotations": {"readOnlyHint": True}},
    {"name": "write_file", "annotations": {"destructiveHint": False}},
    {"name": "delete_file"},  # undeclared hints: destructive by MCP defaults
    {"name": "read_secret", "annotations": {"readOnlyHint": True}},
    {"name": "stats", "annotations": {"readOnlyHint": True}},
]


def _names(items: list[Any], key: str = "name") -> list[str]:
    return [str(item.get(key, item.get("uriTemplate"))) for item in items]


@pytest.fixture
def engine() -> Engine:
    return engine_for(
        policy(
            "p",
            rule("read", tools=["read_*", "list_*"]),
            rule("write", tools=["write_file"], consent=True),
            rule("delete", tools=["delete_*"]),
            rule("stats", tools=["stats"], when="args.n < 10"),
            rule("never-destructive", "Deny", tools=["*"], annotations={"destructiveHint": True}),
            rule("no-secret", "Deny", tools=["read_secret"]),
            rule("maybe-no-list", "Deny", tools=["list_*"], when='args.path == "/root"'),
            rule("docs", resources=["file:///docs/*"]),
            rule("no-private-docs", "Deny", resources=["file:///docs/private/*"]),
            rule("summarise", prompts=["summarise"]),
            rule("p-consent", prompts=["draft_*"], consent=True),
        ),
        grant("later", subject="bob@example.com", expires_at=NOW + timedelta(hours=1)),
    )


def test_tools_are_filtered_to_what_could_be_called(engine: Engine) -> None:
    visible = engine.visible_tools(who(), TOOLS, now=NOW)
    # write_file needs consent alice has not given; delete_file is destructive; read_secret is
    # denied outright; list_dir and stats have conditions some calls satisfy.
    assert _names(visible) == ["read_file", "list_dir", "stats"]
    assert all(isinstance(item, dict) for item in visible)
    assert visible[0] is TOOLS[0]  # definitions are passed through untouched


def test_a_covering_active_grant_makes_a_consent_tool_visible(engine: Engine) -> None:
    bob = who("bob@example.com")
    assert "write_file" in _names(engine.visible_tools(bob, TOOLS, now=NOW))
    expired = NOW + timedelta(hours=1)
    assert "write_file" not in _names(engine.visible_tools(bob, TOOLS, now=expired))


def test_another_agent_or_subject_outside_the_policy_sees_nothing() -> None:
    engine = engine_for(policy("p", rule("all", tools=["*"]), users=["alice@example.com"]))
    assert engine.visible_tools(who(), TOOLS, now=NOW) == TOOLS
    assert engine.visible_tools(who(agent="other-bot"), TOOLS, now=NOW) == []
    assert engine.visible_tools(who("bob@example.com"), TOOLS, now=NOW) == []


def test_nothing_is_visible_without_policies() -> None:
    engine = engine_for()
    assert engine.visible_tools(who(), TOOLS, now=NOW) == []
    assert engine.visible_prompts(who(), [{"name": "summarise"}], now=NOW) == []


def test_resources_and_templates(engine: Engine) -> None:
    listed = [
        {"uri": "file:///docs/readme.md"},
        {"uri": "file:///docs/private/plan.md"},
        {"uri": "file:///etc/passwd"},
        {"uriTemplate": "file:///docs/{name}"},
        {"uriTemplate": "file:///etc/{name}"},
    ]
    visible = engine.visible_resources(who(), listed, now=NOW)
    assert _names(visible, "uri") == ["file:///docs/readme.md", "file:///docs/{name}"]


def test_prompts(engine: Engine) -> None:
    listed = [{"name": "summarise"}, {"name": "draft_reply"}, {"name": "other"}, {}]
    assert _names(engine.visible_prompts(who(), listed, now=NOW)) == ["summarise"]
    with_grant = engine_for(
        policy("p", rule("p-consent", prompts=["draft_*"], consent=True)),
        grant("g", tools=(), prompts=["draft_reply"]),
    )
    assert _names(with_grant.visible_prompts(who(), listed, now=NOW)) == ["draft_reply"]


def test_a_grant_for_another_target_does_not_make_a_tool_visible() -> None:
    engine = engine_for(
        policy("p", rule("w", tools=["write_*"], consent=True)),
        grant("g", tools=["write_notes"]),
    )
    tools = [{"name": "write_notes"}, {"name": "write_file"}]
    tools = [t | {"annotations": {"destructiveHint": False}} for t in tools]
    assert _names(engine.visible_tools(who(), tools, now=NOW)) == ["write_notes"]


def test_visibility_agrees_with_decisions_for_unconditional_rules(engine: Engine) -> None:
    for identity in (who(), who("bob@example.com"), who(agent="x")):
        for tool in TOOLS:
            request = call(
                tool["name"], {}, identity=identity, annotations=tool.get("annotations", {})
            )
            decision = engine.decide(request)
            visible = engine.visible(identity, "tool", tool["name"], tool.get("annotations"), NOW)
            if decision.reason != "expression_error":  # conditional rules need real arguments
                assert visible is decision.allowed, (identity, tool, decision)


def test_deny_whose_condition_holds_for_this_identity_whatever_the_arguments_hides() -> None:
    engine = engine_for(
        policy(
            "p",
            rule("read", tools=["read_*"]),
            rule("contractors", "Deny", tools=["*"], when="subject.claims.contractor == true"),
        )
    )
    contractor = who(claims={"contractor": True})
    assert not engine.decide(call("read_file", identity=contractor)).allowed
    assert engine.visible_tools(contractor, TOOLS[:1], now=NOW) == []


def test_allow_whose_condition_fails_for_this_identity_whatever_the_arguments_hides() -> None:
    engine = engine_for(
        policy("p", rule("admins", tools=["read_*"], when='"admins" in subject.groups'))
    )
    assert not engine.decide(call("read_file")).allowed
    assert engine.visible_tools(who(), TOOLS[:1], now=NOW) == []
