"""Properties of compile and decide over generated policies, grants and requests (hypothesis)."""

from __future__ import annotations

from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from remit.policy.compiler import compile_bundle
from remit.policy.decision import Decision
from remit.policy.engine import Engine
from remit.policy.request import Request
from tests.support.policies import NOW, grant, policy, resources, rule, server, who

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TOOLS = ["read_file", "write_file", "delete_file", "list_dir", "t0", "t1"]
PATTERNS = [*TOOLS, "read_*", "*_file", "t?", "*"]
AGENTS = ["bot-a", "bot-b"]
SUBJECTS = ["alice", "bob"]
GROUPS = ["g1", "g2"]
# Conditions that never fail to evaluate against the requests generated here.
CONDITIONS = [None, "has(args.n) && args.n > 5", 'subject.id == "alice"', "now.getHours() >= 12"]

Doc = dict[str, Any]


@st.composite
def rules(draw: st.DrawFn, name: str) -> Doc:
    effect = draw(st.sampled_from(["Allow", "Deny"]))
    consent = effect == "Allow" and draw(st.booleans())
    return rule(
        name,
        effect,
        tools=draw(st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=3, unique=True)),
        when=draw(st.sampled_from(CONDITIONS)),
        consent=consent,
    )


@st.composite
def policies(draw: st.DrawFn, index: int) -> Doc:
    count = draw(st.integers(1, 3))
    body = [draw(rules(f"r{i}")) for i in range(count)]
    who_for = draw(st.sampled_from(["anyone", "users", "groups"]))
    return policy(
        f"p{index}",
        *body,
        servers=[draw(st.sampled_from(["files", "*"]))],
        agents=[draw(st.sampled_from([*AGENTS, "bot-*", "*"]))],
        users=[draw(st.sampled_from([*SUBJECTS, "*"]))] if who_for == "users" else None,
        groups=[draw(st.sampled_from(GROUPS))] if who_for == "groups" else None,
    )


@st.composite
def grants(draw: st.DrawFn, index: int) -> Doc:
    return grant(
        f"g{index}",
        subject=draw(st.sampled_from(SUBJECTS)),
        agent=draw(st.sampled_from(AGENTS)),
        tools=draw(st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=2, unique=True)),
        when=draw(st.sampled_from([None, "has(args.n) && args.n > 5"])),
        expires_at=NOW + timedelta(hours=draw(st.integers(-48, 48))),
        revoked=draw(st.booleans()),
    )


@st.composite
def worlds(draw: st.DrawFn) -> list[Doc]:
    n_policies = draw(st.integers(0, 4))
    n_grants = draw(st.integers(0, 4))
    docs = [server("files"), server("tickets")]
    docs += [draw(policies(i)) for i in range(n_policies)]
    docs += [draw(grants(i)) for i in range(n_grants)]
    return docs


@st.composite
def requests(draw: st.DrawFn, *, later: bool = False) -> Request:
    identity = who(
        draw(st.sampled_from(SUBJECTS)),
        draw(st.sampled_from(AGENTS)),
        groups=draw(st.lists(st.sampled_from(GROUPS), max_size=2, unique=True)),
    )
    hours = draw(st.integers(0, 72)) if later else draw(st.integers(0, 4))
    return Request(
        identity=identity,
        method="tools/call",
        name=draw(st.sampled_from([*TOOLS, "unnamed_tool"])),
        arguments=draw(st.sampled_from([{}, {"n": 1}, {"n": 9}])),
        annotations={"readOnlyHint": True},
        now=NOW + timedelta(hours=hours),
    )


def _engine(docs: list[Doc]) -> Engine:
    return Engine(compile_bundle(resources(*docs), "files", now=NOW))


def _outcome(decision: Decision) -> tuple[Any, ...]:
    grant_name = decision.grant.name if decision.grant else None
    return decision.effect, decision.reason, decision.rules, grant_name, decision.message


@SETTINGS
@given(docs=worlds(), data=st.data())
def test_digest_and_bytes_do_not_depend_on_input_order(
    docs: list[Doc], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(docs))
    first = compile_bundle(resources(*docs), "files", now=NOW, serial=5)
    second = compile_bundle(resources(*shuffled), "files", now=NOW, serial=5)
    assert first.digest == second.digest
    assert first.canonical() == second.canonical()


@SETTINGS
@given(docs=worlds(), request=requests(), on_tool=st.booleans())
def test_an_applicable_deny_overrides_everything(
    docs: list[Doc], request: Request, on_tool: bool
) -> None:
    pattern = request.name if on_tool else "*"
    guard = policy("zz-guard", rule("no", "Deny", tools=[pattern]), agents=["*"], servers=["*"])
    decision = _engine([*docs, guard]).decide(request)
    assert decision.effect == "deny"
    assert decision.reason == "denied_by_rule"
    assert len(decision.rules) == 1


@SETTINGS
@given(docs=worlds(), request=requests())
def test_default_deny_unless_an_applicable_allow_rule_names_the_tool(
    docs: list[Doc], request: Request
) -> None:
    decision = _engine(docs).decide(request)
    identity = request.identity
    allow_rules: dict[str, Doc] = {}
    for doc in docs:
        if doc["kind"] != "AgentPolicy":
            continue
        spec = doc["spec"]
        if not any(fnmatchcase(identity.agent, a) for a in spec["agents"]):
            continue
        subjects = spec.get("subjects")
        if subjects and not (
            any(fnmatchcase(identity.subject, u) for u in subjects.get("users", []))
            or set(subjects.get("groups", [])) & set(identity.groups)
        ):
            continue
        for body in spec["rules"]:
            if body["effect"] == "Allow" and any(
                fnmatchcase(request.name, p) for p in body["tools"]
            ):
                allow_rules[f"agents/{doc['metadata']['name']}#{body['name']}"] = body
    if not allow_rules:
        assert decision.effect == "deny"
    if decision.allowed:
        assert decision.rules
        assert set(decision.rules) <= set(allow_rules)


@SETTINGS
@given(docs=worlds(), method=st.text(max_size=30))
def test_methods_outside_the_table_are_denied(docs: list[Doc], method: str) -> None:
    known = {
        "initialize", "ping", "server/discover", "logging/setLevel", "tools/list",
        "resources/list", "resources/templates/list", "prompts/list", "tools/call",
        "resources/read", "resources/subscribe", "resources/unsubscribe", "prompts/get",
    }  # fmt: skip
    decision = _engine(docs).decide(Request(who(), method, "read_file", now=NOW))
    if method not in known and not method.startswith("notifications/"):
        assert (decision.effect, decision.reason) == ("deny", "method_not_allowed")


@SETTINGS
@given(
    docs=worlds(),
    request=requests(),
    unrelated=st.sampled_from(["other-agent", "other-server", "other-tools", "other-namespace"]),
)
def test_adding_an_unrelated_policy_never_changes_a_decision(
    docs: list[Doc], request: Request, unrelated: str
) -> None:
    body = [
        rule("allow-all", tools=["*"]),
        rule("deny-all", "Deny", tools=["*"]),
        rule("broken", tools=["*"], when="args.missing.deeper == 1"),
    ]
    if unrelated == "other-agent":
        extra = policy("zz-unrelated", *body, agents=["stranger-*"], servers=["*"])
    elif unrelated == "other-server":
        extra = policy("zz-unrelated", *body, agents=["*"], servers=["tickets"])
    elif unrelated == "other-namespace":
        extra = policy("zz-unrelated", *body, agents=["*"], servers=["*"], namespace="elsewhere")
    else:
        extra = policy(
            "zz-unrelated",
            rule("allow", tools=["zz_*"]),
            rule("deny", "Deny", tools=["zz_*"]),
            agents=["*"],
            servers=["*"],
        )
    before = _engine(docs).decide(request)
    after = _engine([*docs, extra]).decide(request)
    assert _outcome(before) == _outcome(after)


@SETTINGS
@given(
    many=st.integers(1, 8).flatmap(lambda k: st.tuples(*(grants(i) for i in range(k)))),
    request=requests(later=True),
)
def test_expired_or_revoked_grants_never_allow(many: tuple[Doc, ...], request: Request) -> None:
    assert request.now is not None
    consent = policy("consent", rule("any", tools=["*"], consent=True), agents=["*"])
    decision = _engine([server("files"), consent, *many]).decide(request)
    identity, n = request.identity, request.arguments.get("n", 0)
    usable = {
        _ref(d)
        for d in many
        if not d["spec"].get("revoked", False)
        and max(NOW, request.now) < _expiry(d)  # Active at compile time and at decision time
        and d["spec"]["subject"] == identity.subject
        and d["spec"]["agent"] == identity.agent
        and any(fnmatchcase(request.name, p) for p in d["spec"]["tools"])
        and ("when" not in d["spec"] or n > 5)
    }
    assert decision.allowed is bool(usable)
    if decision.allowed:
        assert decision.grant is not None
        assert decision.grant.name in usable
        assert decision.grant.expires_at > request.now
    else:
        assert decision.reason == "consent_required"


def _expiry(doc: Doc) -> datetime:
    return datetime.fromisoformat(doc["spec"]["expiresAt"])


def _ref(doc: Doc) -> str:
    return f"agents/{doc['metadata']['name']}"


@SETTINGS
@given(docs=worlds(), request=requests())
def test_unconditional_worlds_show_exactly_what_they_allow(
    docs: list[Doc], request: Request
) -> None:
    for doc in docs:
        if doc["kind"] == "AgentPolicy":
            for body in doc["spec"]["rules"]:
                body.pop("when", None)
        if doc["kind"] == "ConsentGrant":
            doc["spec"].pop("when", None)
    engine = _engine(docs)
    decision = engine.decide(request)
    visible = engine.visible(
        request.identity, "tool", request.name, request.annotations, request.now
    )
    assert visible is decision.allowed
