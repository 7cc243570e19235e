"""The policy bundle: everything one MCP server's gateway needs, as canonical JSON.

The operator (or ``remit gateway`` standalone) compiles one bundle per MCPServer and signs it;
the gateway verifies it and builds an ``Engine`` from it. The ``digest`` is the sha256 of the
canonical JSON of the bundle's content, which excludes ``serial``, ``issuedAt`` and the digest
itself: recompiling unchanged inputs yields the same digest, so "is every sidecar current?" is
one comparison. ``serial`` orders bundles so a sidecar can refuse a rollback.

What is written, signed and digested is the wire form of ``remit.policy.wire``: fields added
after bundle format 1 are left out at their defaults, so operators and sidecars of different
releases read each other's bundles (docs/architecture.md, "Compatibility across versions").

The types are msgspec structs, not pydantic models: a sidecar decodes and keeps a bundle of
10,000 grants, and structs decode several times faster and take a fraction of the memory.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any, Literal, Self

import msgspec
import orjson

from remit.errors import BundleError
from remit.policy.wire import FORMAT_1, WireForm, decode_error

BUNDLE_KIND = "PolicyBundle"
BUNDLE_API_VERSION = "remit.dev/v1alpha1"
_UNSIGNED_FIELDS = frozenset({"serial", "issuedAt", "digest"})

TargetKind = Literal["tool", "resource", "prompt"]


class Frozen(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Bundle parts are immutable, camelCase on the wire, and reject unknown fields."""

    def model_copy(self, *, update: dict[str, Any]) -> Self:
        """A copy with some fields replaced (python field names)."""
        return msgspec.structs.replace(self, **update)


class GatewayLimits(Frozen, frozen=True, kw_only=True):
    """Bounds on upstream responses (``spec.gateway.limits``; see ``remit.gateway.bounds``)."""

    max_response_bytes: int = 8 * 1024 * 1024
    response_read_timeout_seconds: int = 120
    max_json_depth: int = 64


class GroupClaim(Frozen, frozen=True, kw_only=True):
    """Where group or role names are read from in a token (``authentication.groupClaims``)."""

    claim: str
    prefix: str = ""


class ServerSettings(Frozen, frozen=True, kw_only=True):
    """The MCPServer's settings the gateway enforces."""

    name: str
    namespace: str
    uid: str = ""
    upstream_port: int
    upstream_path: str
    port: int
    admin_port: int
    issuer: str
    audience: str
    jwks_uri: str | None = None
    required_scopes: tuple[str, ...] = ()
    group_claims: tuple[GroupClaim, ...] = (GroupClaim(claim="groups"),)
    agent_claims: tuple[str, ...] = ("azp", "client_id")
    jwks_cache_seconds: int = 300
    jwks_min_refresh_seconds: int = 10
    tool_pinning: Literal["Enforce", "Audit", "Disabled"]
    audit_failure_policy: Literal["Fail", "Ignore"]
    audit_arguments: Literal["Digest", "Redacted"]
    max_body_bytes: int
    limits: GatewayLimits = msgspec.field(default_factory=GatewayLimits)
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    consent_url: str | None = None  # spec.consent.url: this server's consent service


class CompiledRateLimit(Frozen, frozen=True, kw_only=True):
    """``calls`` per ``perSeconds``."""

    calls: int
    per_seconds: int


class CompiledRule(Frozen, frozen=True, kw_only=True):
    """A rule with its policy's context resolved: id ``namespace/policy#rule``."""

    id: str
    effect: Literal["Allow", "Deny"]
    target: TargetKind
    patterns: tuple[str, ...]
    annotations: dict[str, bool] = msgspec.field(default_factory=dict)
    require_consent: bool = False
    when: str | None = None
    rate_limit: CompiledRateLimit | None = None
    consent_max_seconds: int | None = None  # requireConsent rules: the consent page's maximum


class CompiledPolicy(Frozen, frozen=True, kw_only=True):
    """An AgentPolicy that applies to this server."""

    id: str
    uid: str = ""
    resource_version: str = ""
    agents: tuple[str, ...]
    users: tuple[str, ...] | None = None
    groups: tuple[str, ...] | None = None
    rules: tuple[CompiledRule, ...]


class GrantEvidence(Frozen, frozen=True, kw_only=True):
    """How a grant was captured on the consent page (``spec.evidence``): login and request."""

    method: str
    issuer: str
    subject: str
    consented_at: Annotated[datetime, msgspec.Meta(tz=True)]
    request: str
    scope: str


class CompiledGrant(Frozen, frozen=True, kw_only=True):
    """A ConsentGrant for this server, with the evidence a decision cites (an ended one has a
    past ``expiresAt``: ``remit.policy.ended``)."""

    id: str
    uid: str = ""
    resource_version: str = ""
    subject: str
    agent: str
    tools: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()
    when: str | None = None
    expires_at: Annotated[datetime, msgspec.Meta(tz=True)]
    granted_by: str
    reason: str = ""
    evidence: GrantEvidence | None = None

    def patterns(self, target: TargetKind) -> tuple[str, ...]:
        """The names this grant covers for one kind of target."""
        if target == "tool":
            return self.tools
        return self.resources if target == "resource" else self.prompts


class ExcludedGrants(Frozen, frozen=True, kw_only=True):
    """Grants for this server that were not Active at compile time (only the most recent stay in
    ``grants``, in a form that grants nothing: ``remit.policy.ended``)."""

    expired: int = 0
    revoked: int = 0


class Bundle(Frozen, frozen=True, kw_only=True):
    """One MCP server's compiled policy."""

    api_version: Literal["remit.dev/v1alpha1"] = "remit.dev/v1alpha1"
    kind: Literal["PolicyBundle"] = "PolicyBundle"
    server: ServerSettings
    policies: tuple[CompiledPolicy, ...]
    grants: tuple[CompiledGrant, ...]
    excluded_grants: ExcludedGrants
    tool_pins: dict[str, str] = msgspec.field(default_factory=dict)
    next_expiry: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    serial: Annotated[int, msgspec.Meta(ge=0)]
    issued_at: Annotated[datetime, msgspec.Meta(tz=True)]
    digest: str = ""

    def document(self, used: set[str] | None = None) -> dict[str, Any]:
        """The bundle's wire form as a JSON-ready mapping (camelCase keys): fields added after
        format 1 left out at their defaults; ``used`` collects the ones written."""
        return BUNDLE_WIRE.document(self, used)

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
    """Parse and check a bundle's JSON; its digest must match its content.

    A field or value this code does not know is refused (``UnsupportedBundleError``). The
    digest is recomputed over the wire form; a bundle of an operator that predates the wire
    contract (its digest taken over every field it knew, defaults included) is accepted when
    the digest matches its content exactly as written.
    """
    try:
        bundle = _DECODER.decode(payload)
    except msgspec.DecodeError as exc:  # ValidationError included: names the field path
        raise decode_error(exc, "bundle") from exc
    if bundle.digest != bundle.content_digest() and bundle.digest != _written_digest(payload):
        raise BundleError("bundle digest does not match its content")
    return bundle


def _written_digest(payload: bytes) -> str:
    """sha256 over the canonical JSON of the content exactly as written (the digest of a
    pre-contract operator, whose field set differs from this code's)."""
    document = orjson.loads(payload)
    content = {k: v for k, v in document.items() if k not in _UNSIGNED_FIELDS}
    return hashlib.sha256(canonical_json(content)).hexdigest()


_DECODER = msgspec.json.Decoder(Bundle)
BUNDLE_WIRE = WireForm(Bundle, FORMAT_1)
