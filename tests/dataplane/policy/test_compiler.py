"""Compiling resources into one canonical, digest-sealed bundle per MCPServer."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest

from remit.api.loader import load
from remit.errors import BundleError, CompileError, UnsupportedBundleError
from remit.policy.bundle import Bundle, parse_bundle
from remit.policy.compiler import compile, compile_bundle
from remit.policy.ended import REVOKED_AT, is_active
from tests.support.policies import (
    EARLIER,
    LATER,
    NOW,
    bundle_for,
    grant,
    policy,
    resources,
    rule,
    server,
)

EXAMPLES = Path(__file__).parents[3] / "examples"


def active(bundle: Bundle) -> list[str]:
    return [g.id for g in bundle.grants if is_active(g, bundle.issued_at)]


def ended(bundle: Bundle) -> dict[str, datetime]:
    return {g.id: g.expires_at for g in bundle.grants if not is_active(g, bundle.issued_at)}


def _mixed() -> list[dict[str, object]]:
    return [
        server("files"),
        server("tickets"),
        server("files", namespace="other"),
        policy("files-only", rule("read", tools=["read_*"]), uid="u-1", resource_version="7"),
        policy("everywhere", rule("no-delete", "Deny", tools=["delete_*"]), servers=["*"]),
        policy("globbed", rule("r", tools=["t"]), servers=["fil*"]),
        policy("tickets-only", rule("r", tools=["t"]), servers=["tickets"]),
        policy("other-ns", rule("r", tools=["t"]), namespace="other"),
        grant("active-late", expires_at=LATER + timedelta(days=5)),
        grant("active-soon", expires_at=NOW + timedelta(hours=1), uid="g-1", resource_version="3"),
        grant("expired", expires_at=EARLIER),
        grant("at-expiry", expires_at=NOW),
        grant("revoked", revoked=True),
        grant("revoked-and-expired", revoked=True, expires_at=EARLIER),
        grant("for-tickets", server="tickets"),
        grant("other-ns", namespace="other"),
    ]


def test_bundle_holds_only_what_applies_to_the_server() -> None:
    bundle = compile_bundle(resources(*_mixed()), "files", namespace="agents", now=NOW, serial=4)
    assert [p.id for p in bundle.policies] == [
        "agents/everywhere",
        "agents/files-only",
        "agents/globbed",
    ]
    assert active(bundle) == ["agents/active-late", "agents/active-soon"]
    # ended grants stay, granting nothing, so a denial can name them (remit.policy.ended)
    assert ended(bundle) == {
        "agents/at-expiry": NOW,
        "agents/expired": EARLIER,
        "agents/revoked": REVOKED_AT,
        "agents/revoked-and-expired": REVOKED_AT,
    }
    assert (bundle.excluded_grants.expired, bundle.excluded_grants.revoked) == (2, 2)
    assert bundle.next_expiry == NOW + timedelta(hours=1)
    assert bundle.serial == 4
    assert bundle.issued_at == NOW
    assert (bundle.server.name, bundle.server.namespace) == ("files", "agents")


def test_compiled_policy_rule_and_grant_carry_their_evidence() -> None:
    bundle = compile_bundle(resources(*_mixed()), "files", namespace="agents", now=NOW)
    files_only = next(p for p in bundle.policies if p.id == "agents/files-only")
    assert (files_only.uid, files_only.resource_version) == ("u-1", "7")
    assert files_only.agents == ("support-bot",)
    assert (files_only.users, files_only.groups) == (None, None)
    only = files_only.rules[0]
    assert (only.id, only.effect, only.target, only.patterns) == (
        "agents/files-only#read",
        "Allow",
        "tool",
        ("read_*",),
    )
    soon = next(g for g in bundle.grants if g.id == "agents/active-soon")
    assert (soon.uid, soon.resource_version, soon.subject, soon.agent) == (
        "g-1",
        "3",
        "alice@example.com",
        "support-bot",
    )
    assert soon.tools == ("write_file",)
    assert soon.granted_by == "alice@example.com"
    assert soon.reason == "ticket for active-soon"


def test_server_settings_are_compiled() -> None:
    doc = server(
        "files",
        upstream={"port": 8081, "path": "/rpc"},
        gateway={"port": 9100, "adminPort": 9101},
        toolPinning="Audit",
        audit={"failurePolicy": "Ignore", "arguments": "Redacted"},
        maxBodyBytes=2048,
    )
    doc["spec"]["authentication"] |= {
        "jwksUri": "https://idp.example.com/certs",
        "requiredScopes": ["mcp:tools", "mcp:read"],
    }
    settings = bundle_for(doc).server
    assert (settings.upstream_port, settings.upstream_path) == (8081, "/rpc")
    assert (settings.port, settings.admin_port) == (9100, 9101)
    assert settings.tool_pinning == "Audit"
    assert (settings.audit_failure_policy, settings.audit_arguments) == ("Ignore", "Redacted")
    assert settings.max_body_bytes == 2048
    assert settings.jwks_uri == "https://idp.example.com/certs"
    assert settings.required_scopes == ("mcp:tools", "mcp:read")
    assert settings.issuer == "https://idp.example.com/realms/acme"
    assert settings.audience == "https://files.example.com/mcp"


def test_rules_compile_targets_conditions_consent_and_rate_limits() -> None:
    bundle = bundle_for(
        policy(
            "p",
            rule("t", tools=["write_file"], consent=True, when="has(args.path)",
                 rate_limit={"calls": 30, "per": "1m"}),
            rule("r", resources=["file:///data/*"]),
            rule("q", prompts=["summarise"]),
            rule("d", "Deny", tools=["*"], annotations={"destructiveHint": True}),
            users=["*@example.com"],
            groups=["support"],
        )
    )  # fmt: skip
    (compiled,) = bundle.policies
    assert (compiled.users, compiled.groups) == (("*@example.com",), ("support",))
    t, r, q, d = compiled.rules
    assert t.require_consent is True
    assert t.when == "has(args.path)"
    assert t.rate_limit is not None
    assert (t.rate_limit.calls, t.rate_limit.per_seconds) == (30, 60)
    assert (r.target, r.patterns) == ("resource", ("file:///data/*",))
    assert (q.target, q.patterns) == ("prompt", ("summarise",))
    assert (d.effect, d.annotations) == ("Deny", {"destructiveHint": True})
    document = bundle.document()
    assert document["policies"][0]["rules"][0]["rateLimit"] == {"calls": 30, "perSeconds": 60}


def test_no_active_grant_means_no_next_expiry() -> None:
    bundle = bundle_for(grant("old", expires_at=EARLIER))
    assert active(bundle) == []
    assert bundle.next_expiry is None
    assert bundle.excluded_grants.expired == 1


def test_digest_is_sha256_of_canonical_content_without_serial_issued_at_and_digest() -> None:
    bundle = compile_bundle(resources(*_mixed()), "files", namespace="agents", now=NOW, serial=9)
    document = json.loads(bundle.canonical())
    assert document["digest"] == bundle.digest
    content = {k: v for k, v in document.items() if k not in {"serial", "issuedAt", "digest"}}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(canonical.encode()).hexdigest() == bundle.digest
    # Canonical form: sorted keys, no whitespace.
    raw = bundle.canonical()
    assert raw == orjson.dumps(json.loads(raw), option=orjson.OPT_SORT_KEYS)
    assert b" " not in raw.replace(b"ticket for ", b"")
    assert document["issuedAt"] == "2026-03-02T10:00:00Z"
    assert document["nextExpiry"] == "2026-03-02T11:00:00Z"


def test_recompiling_later_with_another_serial_keeps_the_digest() -> None:
    docs = resources(*_mixed())
    first = compile_bundle(docs, "files", namespace="agents", now=NOW, serial=1)
    second = compile_bundle(
        docs, "files", namespace="agents", now=NOW + timedelta(seconds=5.5), serial=2
    )
    assert first.digest == second.digest
    assert first.canonical() != second.canonical()
    assert second.issued_at.microsecond == 0


def test_any_input_order_gives_byte_identical_bundle() -> None:
    docs = resources(*_mixed())
    expected = compile_bundle(docs, "files", namespace="agents", now=NOW, serial=3).canonical()
    shuffler = random.Random(7)
    for _ in range(10):
        shuffler.shuffle(docs)
        again = compile_bundle(docs, "files", namespace="agents", now=NOW, serial=3)
        assert again.canonical() == expected


def test_content_changes_change_the_digest() -> None:
    base = bundle_for(policy("p", rule("r", tools=["t"])), grant("g"))
    moved = LATER + timedelta(days=1)
    changes = [
        bundle_for(policy("p", rule("r", tools=["u"])), grant("g")),
        bundle_for(policy("p", rule("r", "Deny", tools=["t"])), grant("g")),
        bundle_for(policy("p", rule("r", tools=["t"])), grant("g", when="has(args.x)")),
        bundle_for(policy("p", rule("r", tools=["t"])), grant("g", expires_at=moved)),
        bundle_for(policy("p", rule("r", tools=["t"])), grant("g"), grant("h", expires_at=EARLIER)),
        bundle_for(policy("p", rule("r", tools=["t"]), uid="new"), grant("g")),
    ]  # fmt: skip
    digests = {base.digest, *(b.digest for b in changes)}
    assert len(digests) == len(changes) + 1


def test_tool_pins_are_sorted_and_part_of_the_digest() -> None:
    docs = resources(server())
    pinned = compile_bundle(docs, "files", now=NOW, tool_pins={"b": "2", "a": "1"})
    assert list(pinned.tool_pins) == ["a", "b"]
    reordered = compile_bundle(docs, "files", now=NOW, tool_pins={"a": "1", "b": "2"})
    assert pinned.canonical() == reordered.canonical()
    assert compile_bundle(docs, "files", now=NOW).digest != pinned.digest


def test_unknown_or_ambiguous_server_is_a_compile_error() -> None:
    docs = resources(*_mixed())
    with pytest.raises(CompileError, match="no MCPServer named 'nope'"):
        compile_bundle(docs, "nope", now=NOW)
    with pytest.raises(CompileError, match="in namespace 'elsewhere'"):
        compile_bundle(docs, "files", namespace="elsewhere", now=NOW)
    with pytest.raises(CompileError, match="several namespaces \\(agents, other\\)"):
        compile_bundle(docs, "files", now=NOW)
    assert compile_bundle(docs, "tickets", now=NOW).server.namespace == "agents"


def test_duplicate_names_are_refused_rather_than_resolved_by_input_order() -> None:
    docs = resources(
        server(),
        policy("p", rule("r", tools=["t"])),
        policy("p", rule("r", "Deny", tools=["t"])),
    )
    with pytest.raises(CompileError, match="duplicate AgentPolicy: agents/p"):
        compile_bundle(docs, "files", now=NOW)
    docs = resources(server(), grant("g"), grant("g", tools=["other"]))
    with pytest.raises(CompileError, match="duplicate ConsentGrant: agents/g"):
        compile_bundle(docs, "files", now=NOW)


def test_compile_alias_and_default_now() -> None:
    assert compile is compile_bundle
    bundle = compile(resources(server()), "files")
    assert bundle.issued_at.tzinfo is not None


def test_parse_bundle_round_trips_and_rejects_tampering() -> None:
    bundle = compile_bundle(resources(*_mixed()), "files", namespace="agents", now=NOW)
    assert parse_bundle(bundle.canonical()) == bundle
    document = json.loads(bundle.canonical())
    document["grants"][0]["subject"] = "mallory@example.com"
    with pytest.raises(BundleError, match="digest does not match"):
        parse_bundle(json.dumps(document).encode())
    document = json.loads(bundle.canonical())
    document["unexpected"] = True
    with pytest.raises(UnsupportedBundleError, match="uses field `unexpected`"):
        parse_bundle(json.dumps(document).encode())
    with pytest.raises(BundleError, match="malformed bundle"):
        parse_bundle(b"{not json")


def test_examples_compile_per_server() -> None:
    loaded = load([EXAMPLES])
    files = compile_bundle(loaded.resources, "files", now=NOW)
    tickets = compile_bundle(loaded.resources, "tickets", now=NOW)
    assert [p.id for p in files.policies] == ["agents/guardrails", "agents/support-bot"]
    assert active(files) == ["agents/alice-support-bot-write"]
    assert (files.excluded_grants.expired, files.excluded_grants.revoked) == (1, 0)
    assert [p.id for p in tickets.policies] == ["agents/guardrails", "agents/triage-agents"]
    assert active(tickets) == ["agents/dave-triage-close"]
    assert (tickets.excluded_grants.expired, tickets.excluded_grants.revoked) == (0, 1)
    assert files.digest != tickets.digest
