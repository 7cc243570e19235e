"""Compile custom resources into one bundle per MCPServer.

Only what applies to the server goes in: its settings, the AgentPolicies of its namespace that
name it (or ``*``), and the ConsentGrants for it that are Active at compile time. Expired and
revoked grants are counted; the most recent of them are kept in a form that grants nothing, so
a denial can name them (``remit.policy.ended``). Inputs in any order give a byte-identical bundle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from itertools import pairwise

from remit.api.agentpolicy import AgentPolicy, Rule
from remit.api.common import Resource
from remit.api.consentgrant import ConsentEvidence, ConsentGrant
from remit.api.mcpserver import MCPServer
from remit.errors import CompileError
from remit.policy.bundle import (
    Bundle,
    CompiledGrant,
    CompiledPolicy,
    CompiledRateLimit,
    CompiledRule,
    ExcludedGrants,
    GatewayLimits,
    GrantEvidence,
    GroupClaim,
    ServerSettings,
    TargetKind,
)
from remit.policy.ended import as_ended, ended_grants


def find_server(resources: Iterable[Resource], name: str, namespace: str | None) -> MCPServer:
    """The MCPServer called ``name`` (in ``namespace`` if given; otherwise it must be unique)."""
    matches = [
        r
        for r in resources
        if isinstance(r, MCPServer)
        and r.metadata.name == name
        and (namespace is None or r.metadata.namespace == namespace)
    ]
    if not matches:
        where = f" in namespace {namespace!r}" if namespace else ""
        raise CompileError(f"no MCPServer named {name!r}{where}")
    if len(matches) > 1:
        spaces = ", ".join(sorted(m.metadata.namespace for m in matches))
        raise CompileError(f"MCPServer {name!r} exists in several namespaces ({spaces}): pick one")
    return matches[0]


def _settings(server: MCPServer) -> ServerSettings:
    spec = server.spec
    return ServerSettings(
        name=server.metadata.name,
        namespace=server.metadata.namespace,
        uid=server.metadata.uid,
        upstream_port=spec.upstream.port,
        upstream_path=spec.upstream.path,
        port=spec.gateway.port,
        admin_port=spec.gateway.admin_port,
        issuer=spec.authentication.issuer,
        audience=spec.authentication.audience,
        jwks_uri=spec.authentication.jwks_uri,
        required_scopes=tuple(spec.authentication.required_scopes),
        group_claims=tuple(
            GroupClaim(claim=g.claim, prefix=g.prefix) for g in spec.authentication.group_claims
        ),
        agent_claims=tuple(spec.authentication.agent_claims),
        jwks_cache_seconds=spec.authentication.jwks_cache_seconds,
        jwks_min_refresh_seconds=spec.authentication.jwks_min_refresh_seconds,
        tool_pinning=spec.tool_pinning,
        audit_failure_policy=spec.audit.failure_policy,
        audit_arguments=spec.audit.arguments,
        max_body_bytes=spec.max_body_bytes,
        limits=GatewayLimits(
            max_response_bytes=spec.gateway.limits.max_response_bytes,
            response_read_timeout_seconds=spec.gateway.limits.response_read_timeout_seconds,
            max_json_depth=spec.gateway.limits.max_json_depth,
        ),
        allowed_hosts=tuple(spec.gateway.allowed_hosts),
        allowed_origins=tuple(spec.gateway.allowed_origins),
        consent_url=spec.consent.url,
    )


def _target(rule: Rule) -> tuple[TargetKind, tuple[str, ...]]:
    if rule.tools:
        return "tool", tuple(rule.tools)
    if rule.resources:
        return "resource", tuple(rule.resources)
    return "prompt", tuple(rule.prompts)


def _rule(policy: AgentPolicy, rule: Rule) -> CompiledRule:
    target, patterns = _target(rule)
    limit = rule.rate_limit
    return CompiledRule(
        id=f"{policy.ref}#{rule.name}",
        effect=rule.effect,
        target=target,
        patterns=patterns,
        annotations=dict(rule.annotations),
        require_consent=rule.require_consent,
        when=rule.when,
        rate_limit=CompiledRateLimit(calls=limit.calls, per_seconds=limit.per_seconds)
        if limit
        else None,
        consent_max_seconds=rule.consent_max_seconds if rule.require_consent else None,
    )


def _policy(policy: AgentPolicy) -> CompiledPolicy:
    subjects = policy.spec.subjects
    return CompiledPolicy(
        id=policy.ref,
        uid=policy.metadata.uid,
        resource_version=policy.metadata.resource_version,
        agents=tuple(policy.spec.agents),
        users=tuple(subjects.users) if subjects else None,
        groups=tuple(subjects.groups) if subjects else None,
        rules=tuple(_rule(policy, r) for r in policy.spec.rules),
    )


def _grant(grant: ConsentGrant) -> CompiledGrant:
    spec = grant.spec
    return CompiledGrant(
        id=grant.ref,
        uid=grant.metadata.uid,
        resource_version=grant.metadata.resource_version,
        subject=spec.subject,
        agent=spec.agent,
        tools=tuple(spec.tools),
        resources=tuple(spec.resources),
        prompts=tuple(spec.prompts),
        when=spec.when,
        expires_at=spec.expires_at,
        granted_by=spec.granted_by,
        reason=spec.reason,
        evidence=_evidence(spec.evidence),
    )


def _evidence(evidence: ConsentEvidence | None) -> GrantEvidence | None:
    if evidence is None:
        return None
    return GrantEvidence(
        method=evidence.method,
        issuer=evidence.issuer,
        subject=evidence.subject,
        consented_at=evidence.consented_at,
        request=evidence.request,
        scope=evidence.scope,
    )


def applies_to(policy: AgentPolicy, server: MCPServer) -> bool:
    """Whether ``policy`` governs ``server`` (same namespace, and it names the server)."""
    return policy.metadata.namespace == server.metadata.namespace and any(
        fnmatchcase(server.metadata.name, pattern) for pattern in policy.spec.servers
    )


def grant_for(grant: ConsentGrant, server: MCPServer) -> bool:
    """Whether ``grant`` is consent for ``server``."""
    return (
        grant.metadata.namespace == server.metadata.namespace
        and grant.spec.server == server.metadata.name
    )


def _unique(kind: str, ids: list[str]) -> None:
    """Two objects with one name would make the bundle depend on input order: refuse them.

    ``ids`` is sorted, so duplicates are neighbours.
    """
    duplicates = sorted({a for a, b in pairwise(ids) if a == b})
    if duplicates:
        raise CompileError(f"duplicate {kind}: {', '.join(duplicates)}")


def compile_bundle(
    resources: Iterable[Resource],
    server: str,
    *,
    namespace: str | None = None,
    serial: int = 0,
    now: datetime | None = None,
    tool_pins: Mapping[str, str] | None = None,
) -> Bundle:
    """Compile the bundle for MCPServer ``server``; raise ``CompileError`` if it is unknown."""
    resources = list(resources)
    target = find_server(resources, server, namespace)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    policies = sorted(
        (_policy(r) for r in resources if isinstance(r, AgentPolicy) and applies_to(r, target)),
        key=lambda p: p.id,
    )
    grants: list[CompiledGrant] = []
    ended: list[ConsentGrant] = []
    expired = revoked = 0
    for resource in resources:
        if not isinstance(resource, ConsentGrant) or not grant_for(resource, target):
            continue
        phase = resource.phase(now)
        if phase == "Revoked":
            revoked += 1
        elif phase == "Expired":
            expired += 1
        if phase != "Active":
            ended.append(resource)
        else:
            grants.append(_grant(resource))
    next_expiry = min((g.expires_at for g in grants), default=None)
    grants.extend(as_ended(_grant(g), revoked=g.spec.revoked) for g in ended_grants(ended, now))
    grants.sort(key=lambda g: g.id)
    _unique("AgentPolicy", [p.id for p in policies])
    _unique("ConsentGrant", [g.id for g in grants])
    bundle = Bundle(
        server=_settings(target),
        policies=tuple(policies),
        grants=tuple(grants),
        excluded_grants=ExcludedGrants(expired=expired, revoked=revoked),
        tool_pins=dict(sorted((tool_pins or {}).items())),
        next_expiry=next_expiry,
        serial=serial,
        issued_at=now.replace(microsecond=0),
    )
    return bundle.sealed()


compile = compile_bundle
