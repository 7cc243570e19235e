"""Builders for Remit custom resources in tests: plain dicts shaped like the YAML users write.

Each builder returns the Kubernetes document; ``resources`` validates documents into models
through the real loader, and ``engine_for`` compiles them into an Engine at a fixed time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from remit.api.common import Resource
from remit.api.loader import parse
from remit.policy.bundle import Bundle
from remit.policy.compiler import compile_bundle
from remit.policy.engine import Engine
from remit.policy.request import Identity, Request

API = "remit.dev/v1alpha1"
NAMESPACE = "agents"
# A Monday at 10:00 UTC: inside the examples' business hours.
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=30)
EARLIER = NOW - timedelta(days=1)

Doc = dict[str, Any]


def _metadata(name: str, namespace: str, uid: str, resource_version: str) -> Doc:
    meta: Doc = {"name": name, "namespace": namespace}
    if uid:
        meta["uid"] = uid
    if resource_version:
        meta["resourceVersion"] = resource_version
    return meta


def server(name: str = "files", namespace: str = NAMESPACE, **spec: Any) -> Doc:
    """An MCPServer document with the minimum spec, overridable by keyword."""
    body: Doc = {
        "selector": {"matchLabels": {"app": f"{name}-mcp"}},
        "authentication": {
            "issuer": "https://idp.example.com/realms/acme",
            "audience": f"https://{name}.example.com/mcp",
        },
    }
    body.update(spec)
    meta = _metadata(name, namespace, "", "")
    return {"apiVersion": API, "kind": "MCPServer", "metadata": meta, "spec": body}


def rule(
    name: str,
    effect: str = "Allow",
    *,
    tools: Sequence[str] = (),
    resources: Sequence[str] = (),
    prompts: Sequence[str] = (),
    when: str | None = None,
    consent: bool = False,
    annotations: Mapping[str, bool] | None = None,
    rate_limit: Mapping[str, Any] | None = None,
) -> Doc:
    """One AgentPolicy rule."""
    body: Doc = {"name": name, "effect": effect}
    for key, value in (("tools", tools), ("resources", resources), ("prompts", prompts)):
        if value:
            body[key] = list(value)
    if when is not None:
        body["when"] = when
    if consent:
        body["requireConsent"] = True
    if annotations:
        body["annotations"] = dict(annotations)
    if rate_limit:
        body["rateLimit"] = dict(rate_limit)
    return body


def policy(
    name: str,
    *rules: Doc,
    servers: Sequence[str] = ("files",),
    agents: Sequence[str] = ("support-bot",),
    users: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    namespace: str = NAMESPACE,
    uid: str = "",
    resource_version: str = "",
) -> Doc:
    """An AgentPolicy; ``users``/``groups`` both None means subjects omitted (anyone)."""
    spec: Doc = {"servers": list(servers), "agents": list(agents), "rules": list(rules)}
    if users is not None or groups is not None:
        subjects: Doc = {}
        if users:
            subjects["users"] = list(users)
        if groups:
            subjects["groups"] = list(groups)
        spec["subjects"] = subjects
    return {
        "apiVersion": API,
        "kind": "AgentPolicy",
        "metadata": _metadata(name, namespace, uid, resource_version),
        "spec": spec,
    }


def grant(
    name: str,
    *,
    subject: str = "alice@example.com",
    agent: str = "support-bot",
    server: str = "files",
    tools: Sequence[str] = ("write_file",),
    resources: Sequence[str] = (),
    prompts: Sequence[str] = (),
    when: str | None = None,
    expires_at: datetime = LATER,
    revoked: bool = False,
    namespace: str = NAMESPACE,
    uid: str = "",
    resource_version: str = "",
) -> Doc:
    """A ConsentGrant, Active until ``expires_at`` unless revoked."""
    spec: Doc = {
        "subject": subject,
        "agent": agent,
        "server": server,
        "expiresAt": expires_at.isoformat(),
        "grantedBy": subject,
        "reason": f"ticket for {name}",
    }
    for key, value in (("tools", tools), ("resources", resources), ("prompts", prompts)):
        if value:
            spec[key] = list(value)
    if when is not None:
        spec["when"] = when
    if revoked:
        spec["revoked"] = True
    return {
        "apiVersion": API,
        "kind": "ConsentGrant",
        "metadata": _metadata(name, namespace, uid, resource_version),
        "spec": spec,
    }


def resources(*docs: Doc) -> list[Resource]:
    """Validate documents through the real loader (raises ``ResourceError``)."""
    return [parse(doc) for doc in docs]


def bundle_for(
    *docs: Doc, name: str = "files", namespace: str | None = NAMESPACE, now: datetime = NOW
) -> Bundle:
    """Compile documents (plus a default MCPServer if none is given) into a bundle."""
    if not any(d["kind"] == "MCPServer" for d in docs):
        docs = (server(name), *docs)
    return compile_bundle(resources(*docs), name, namespace=namespace, now=now)


def engine_for(*docs: Doc, name: str = "files", now: datetime = NOW) -> Engine:
    """An Engine over the bundle compiled from ``docs``."""
    return Engine(bundle_for(*docs, name=name, now=now))


def who(
    subject: str = "alice@example.com",
    agent: str = "support-bot",
    *,
    groups: Sequence[str] = (),
    issuer: str = "https://idp.example.com/realms/acme",
    chain: Sequence[str] = (),
    claims: Mapping[str, Any] | None = None,
) -> Identity:
    """An authenticated caller."""
    return Identity(
        subject=subject,
        agent=agent,
        issuer=issuer,
        groups=tuple(groups),
        chain=tuple(chain),
        claims=dict(claims or {}),
    )


def call(
    name: str,
    args: Mapping[str, Any] | None = None,
    *,
    identity: Identity | None = None,
    annotations: Mapping[str, Any] | None = None,
    method: str = "tools/call",
    now: datetime | None = NOW,
) -> Request:
    """A request for ``name`` (a tool by default); read-only annotations unless given."""
    if annotations is None:
        annotations = {"readOnlyHint": True} if method == "tools/call" else {}
    return Request(
        identity=identity or who(),
        method=method,
        name=name,
        arguments=dict(args or {}),
        annotations=dict(annotations),
        now=now,
    )
