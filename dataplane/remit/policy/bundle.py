"""The policy bundle: everything one MCP server's gateway needs, as canonical JSON.

The operator (or ``remit gateway`` standalone) compiles one bundle per MCPServer and signs it;
the gateway verifies it and builds an ``Engine`` from it. The ``digest`` is the sha256 of the
canonical JSON of the bundle's content, which excludes ``serial``, ``issuedAt`` and the digest
itself: recompiling unchanged inputs yields the same digest, so "is every sidecar current?" is
one comparison. ``serial`` orders bundles so a sidecar can refuse a rollback.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from remit.errors import BundleError

BUNDLE_KIND = "PolicyBundle"
BUNDLE_API_VERSION = "remit.dev/v1alpha1"
_UNSIGNED_FIELDS = frozenset({"serial", "issuedAt", "digest"})

TargetKind = Literal["tool", "resource", "prompt"]


class Frozen(BaseModel):
    """Bundle parts are immutable and reject unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ServerSettings(Frozen):
    """The MCPServer's settings the gateway enforces."""

    name: str
    namespace: str
    uid: str = ""
    upstream_port: int = Field(alias="upstreamPort")
    upstream_path: str = Field(alias="upstreamPath")
    port: int
    admin_port: int = Field(alias="adminPort")
    issuer: str
    audience: str
    jwks_uri: str | None = Field(None, alias="jwksUri")
    required_scopes: tuple[str, ...] = Field((), alias="requiredScopes")
    tool_pinning: Literal["Enforce", "Audit", "Disabled"] = Field(alias="toolPinning")
    audit_failure_policy: Literal["Fail", "Ignore"] = Field(alias="auditFailurePolicy")
    audit_arguments: Literal["Digest", "Redacted"] = Field(alias="auditArguments")
    max_body_bytes: int = Field(alias="maxBodyBytes")


class CompiledRateLimit(Frozen):
    """``calls`` per ``perSeconds``."""

    calls: int
    per_seconds: int = Field(alias="perSeconds")


class CompiledRule(Frozen):
    """A rule with its policy's context resolved: id ``namespace/policy#rule``."""

    id: str
    effect: Literal["Allow", "Deny"]
    target: TargetKind
    patterns: tuple[str, ...]
    annotations: dict[str, bool] = Field(default_factory=dict)
    require_consent: bool = Field(False, alias="requireConsent")
    when: str | None = None
    rate_limit: CompiledRateLimit | None = Field(None, alias="rateLimit")


class CompiledPolicy(Frozen):
    """An AgentPolicy that applies to this server."""

    id: str
    uid: str = ""
    resource_version: str = Field("", alias="resourceVersion")
    agents: tuple[str, ...]
    users: tuple[str, ...] | None = None
    groups: tuple[str, ...] | None = None
    rules: tuple[CompiledRule, ...]


class CompiledGrant(Frozen):
    """An Active ConsentGrant for this server, with the evidence a decision cites."""

    id: str
    uid: str = ""
    resource_version: str = Field("", alias="resourceVersion")
    subject: str
    agent: str
    tools: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()
    when: str | None = None
    expires_at: datetime = Field(alias="expiresAt")
    granted_by: str = Field(alias="grantedBy")
    reason: str = ""

    def patterns(self, target: TargetKind) -> tuple[str, ...]:
        """The names this grant covers for one kind of target."""
        if target == "tool":
            return self.tools
        return self.resources if target == "resource" else self.prompts


class ExcludedGrants(Frozen):
    """Grants for this server left out because they were not Active at compile time."""

    expired: int = 0
    revoked: int = 0


class Bundle(Frozen):
    """One MCP server's compiled policy."""

    api_version: Literal["remit.dev/v1alpha1"] = Field("remit.dev/v1alpha1", alias="apiVersion")
    kind: Literal["PolicyBundle"] = "PolicyBundle"
    server: ServerSettings
    policies: tuple[CompiledPolicy, ...]
    grants: tuple[CompiledGrant, ...]
    excluded_grants: ExcludedGrants = Field(alias="excludedGrants")
    tool_pins: dict[str, str] = Field(default_factory=dict, alias="toolPins")
    next_expiry: datetime | None = Field(None, alias="nextExpiry")
    serial: int = Field(ge=0)
    issued_at: datetime = Field(alias="issuedAt")
    digest: str = ""

    def document(self) -> dict[str, Any]:
        """The bundle as a JSON-ready mapping (camelCase keys)."""
        return self.model_dump(by_alias=True, mode="json")

    def canonical(self) -> bytes:
        """Canonical JSON of the whole bundle: sorted keys, no spaces, UTF-8."""
        return canonical_json(self.document())

    def content_digest(self) -> str:
        """sha256 over the canonical content (everything but serial, issuedAt, digest)."""
        content = {k: v for k, v in self.document().items() if k not in _UNSIGNED_FIELDS}
        return hashlib.sha256(canonical_json(content)).hexdigest()

    def sealed(self) -> Bundle:
        """This bundle with its digest filled in."""
        return self.model_copy(update={"digest": self.content_digest()})


def canonical_json(value: Any) -> bytes:
    """Sorted keys, compact separators, UTF-8: the same value always gives the same bytes."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def parse_bundle(payload: bytes) -> Bundle:
    """Parse and check a bundle's JSON; its digest must match its content."""
    try:
        bundle = Bundle.model_validate_json(payload)
    except ValueError as exc:
        raise BundleError(f"malformed bundle: {exc}") from exc
    if bundle.digest != bundle.content_digest():
        raise BundleError("bundle digest does not match its content")
    return bundle
