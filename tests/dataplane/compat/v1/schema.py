"""Release format 1's bundle and delta decoder, frozen: a copy of ``remit.policy.bundle`` and
``remit.policy.delta`` as they were at commit cd3fc64 (before the compatibility contract).

This is "the sidecar of the previous release" in the compatibility tests: it decodes with
``forbid_unknown_fields`` and recomputes the digest over ``msgspec.to_builtins`` WITH defaults,
exactly as v1 sidecars in the field do. Never edit it to make a test pass.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any, Literal, Self

import msgspec
import orjson

from remit.errors import BundleError

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
    jwks_cache_seconds: int = 300
    jwks_min_refresh_seconds: int = 10
    tool_pinning: Literal["Enforce", "Audit", "Disabled"]
    audit_failure_policy: Literal["Fail", "Ignore"]
    audit_arguments: Literal["Digest", "Redacted"]
    max_body_bytes: int
    limits: GatewayLimits = msgspec.field(default_factory=GatewayLimits)
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()


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

    def document(self) -> dict[str, Any]:
        """The bundle as a JSON-ready mapping (camelCase keys)."""
        document: dict[str, Any] = msgspec.to_builtins(self)
        return document

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
        bundle = _DECODER.decode(payload)
    except msgspec.DecodeError as exc:  # ValidationError included: names the field path
        raise BundleError(f"malformed bundle: {exc}") from exc
    if bundle.digest != bundle.content_digest():
        raise BundleError("bundle digest does not match its content")
    return bundle


_DECODER = msgspec.json.Decoder(Bundle)


class BundleDelta(Frozen, frozen=True, kw_only=True):
    """The grants that changed between bundle ``base`` and the bundle it yields."""

    api_version: Literal["remit.dev/v1alpha1"] = "remit.dev/v1alpha1"
    kind: Literal["PolicyBundleDelta"] = "PolicyBundleDelta"
    server: str  # namespace/name, as the gateway knows its own server
    base_serial: Annotated[int, msgspec.Meta(ge=0)]
    base_digest: str
    serial: Annotated[int, msgspec.Meta(ge=0)]
    issued_at: Annotated[datetime, msgspec.Meta(tz=True)]
    digest: str
    removed: tuple[str, ...] = ()
    upserted: tuple[CompiledGrant, ...] = ()
    excluded_grants: ExcludedGrants
    next_expiry: Annotated[datetime, msgspec.Meta(tz=True)] | None = None

    def canonical(self) -> bytes:
        """Canonical JSON of the delta (what is signed)."""
        return canonical_json(msgspec.to_builtins(self))


def apply_delta(base: Bundle, delta: BundleDelta) -> Bundle:
    """The bundle ``delta`` yields from ``base``, its digest checked against the signed one.

    Raises ``BundleError`` if ``base`` is not the bundle the delta names, ``BundleError`` if
    the delta removes a grant the base lacks or names a grant twice, and ``BundleError``
    if the result is not the bundle the operator signed.
    """
    if base.serial != delta.base_serial or base.digest != delta.base_digest:
        raise BundleError(
            f"delta applies to serial {delta.base_serial} (digest {delta.base_digest[:12]}), "
            f"but serial {base.serial} (digest {base.digest[:12]}) is in force"
        )
    grants = {g.id: g for g in base.grants}
    for gid in delta.removed:
        if grants.pop(gid, None) is None:
            raise BundleError(f"malformed delta: removes grant {gid!r}, which the base lacks")
    upserted = {g.id for g in delta.upserted}
    if len(upserted) != len(delta.upserted) or upserted & set(delta.removed):
        raise BundleError("malformed delta: a grant is named twice")
    for grant in delta.upserted:
        grants[grant.id] = grant
    result = msgspec.structs.replace(
        base,
        grants=tuple(grants[gid] for gid in sorted(grants)),
        excluded_grants=delta.excluded_grants,
        next_expiry=delta.next_expiry,
        serial=delta.serial,
        issued_at=delta.issued_at,
        digest="",
    ).sealed()
    if result.digest != delta.digest:
        raise BundleError(
            f"delta yields digest {result.digest[:12]}, but it was signed for {delta.digest[:12]}"
        )
    return result


def parse_delta(payload: bytes) -> BundleDelta:
    """Parse a delta's JSON; unknown fields and wrong types are refused."""
    try:
        return _DELTA_DECODER.decode(payload)
    except msgspec.DecodeError as exc:
        raise BundleError(f"malformed bundle delta: {exc}") from exc


_DELTA_DECODER = msgspec.json.Decoder(BundleDelta)
