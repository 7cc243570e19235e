"""MCPServer: an MCP server whose pods get the Remit gateway, and how callers authenticate."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from remit.api.claimpath import parse_claim_path
from remit.api.common import Model, NonEmptyStr, Resource, StatusCondition

Port = Annotated[int, Field(ge=1, le=65535)]
HostPattern = Annotated[
    str,
    StringConstraints(
        pattern=r"^(\*|[A-Za-z0-9._~-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?)$"
    ),
]
OriginPattern = Annotated[
    str, StringConstraints(pattern=r"^(\*|null|https?://[^/?#\s]+)$", max_length=2048)
]


class LabelSelectorRequirement(Model):
    """One ``matchExpressions`` entry of a Kubernetes label selector."""

    key: NonEmptyStr = Field(description="The label key the requirement applies to.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="How the label's value relates to `values`."
    )
    values: list[str] = Field(
        default_factory=list, description="Label values; empty for Exists and DoesNotExist."
    )


class LabelSelector(Model):
    """Which pods run this MCP server (a standard Kubernetes label selector)."""

    match_labels: dict[str, str] = Field(
        default_factory=dict,
        alias="matchLabels",
        description="Labels a pod must carry, all of them.",
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, alias="matchExpressions", description="Requirements, all of them."
    )

    @model_validator(mode="after")
    def _not_empty(self) -> LabelSelector:
        # An empty Kubernetes selector selects every pod (a NetworkPolicy would govern the
        # whole namespace) while injection would match none: refuse it, never guess.
        if not self.match_labels and not self.match_expressions:
            raise ValueError(
                "selector must set matchLabels or matchExpressions (an empty selector would "
                "select every pod in the namespace)"
            )
        return self


class UpstreamSpec(Model):
    """The MCP server container inside the pod, reached by the gateway on 127.0.0.1."""

    port: Port = Field(8080, description="Port the MCP server listens on inside the pod.")
    path: Annotated[str, StringConstraints(pattern=r"^/")] = Field(
        "/mcp", description="HTTP path of the MCP endpoint."
    )


class GatewayLimits(Model):
    """Bounds on what the upstream MCP server may send back through the gateway."""

    max_response_bytes: int = Field(
        8 * 1024 * 1024,
        alias="maxResponseBytes",
        ge=1024,
        le=1024 * 1024 * 1024,
        description="Largest upstream JSON response, and largest single SSE event, in bytes.",
    )
    response_read_timeout_seconds: int = Field(
        120,
        alias="responseReadTimeoutSeconds",
        ge=1,
        le=3600,
        description="Seconds the upstream may take to finish a JSON response, or between "
        "two events of a call's SSE stream.",
    )
    max_json_depth: int = Field(
        64,
        alias="maxJsonDepth",
        ge=8,
        le=200,
        description="Deepest nesting of arrays and objects in a JSON-RPC message, "
        "request or response.",
    )


class GatewayPorts(Model):
    """The sidecar's ports: ``port`` for MCP clients (the Service targets it), ``adminPort``,
    and the limits it enforces on upstream responses."""

    port: Port = Field(9000, description="Port MCP clients connect to.")
    admin_port: Port = Field(
        9901, alias="adminPort", description="Admin API: bundle push, status, health, metrics."
    )
    limits: GatewayLimits = Field(
        default_factory=lambda: GatewayLimits.model_validate({}),
        description="Bounds on upstream responses (size, read time, JSON depth).",
    )
    allowed_hosts: list[HostPattern] = Field(
        default_factory=list,
        alias="allowedHosts",
        description="Host header values callers may use (`name` for any port, or `name:port`; "
        "`*` allows any), besides the safe defaults: IP literals, localhost, single-label and "
        "`.svc` / `.svc.cluster.local` names, and the audience's host. Guards against DNS "
        "rebinding.",
    )
    allowed_origins: list[OriginPattern] = Field(
        default_factory=list,
        alias="allowedOrigins",
        description="Origin header values browsers may send (`scheme://host[:port]`; `*` allows "
        "any), besides origins whose host is an allowed host. Requests without Origin are "
        "unaffected.",
    )


class GroupClaim(Model):
    """One place in the token that holds group or role names for ``subject.groups``."""

    claim: NonEmptyStr = Field(
        description="A top-level claim name (`groups`, `roles`, `https://example.com/roles`) "
        "or an RFC 6901 JSON Pointer into the token (`/realm_access/roles`, "
        "`/resource_access/my-client/roles`). Its value must be a list of strings."
    )
    prefix: Annotated[str, StringConstraints(max_length=64)] = Field(
        "",
        description="Put before each name from this claim (e.g. `role:`), so roles and groups "
        "with the same name stay apart in policies.",
    )

    @field_validator("claim")
    @classmethod
    def _valid_path(cls, value: str) -> str:
        parse_claim_path(value)
        return value


class Authentication(Model):
    """How callers authenticate: OAuth 2.1 access tokens (JWT) from one issuer."""

    issuer: Annotated[str, StringConstraints(pattern=r"^https?://")] = Field(
        description="Token issuer (`iss`); its OIDC discovery document is used unless jwksUri."
    )
    audience: NonEmptyStr = Field(
        description="This server's resource identifier (RFC 8707); required in the token `aud`."
    )
    jwks_uri: Annotated[str, StringConstraints(pattern=r"^https?://")] | None = Field(
        None, alias="jwksUri", description="JWKS URL; omitted means OIDC discovery."
    )
    required_scopes: list[NonEmptyStr] = Field(
        default_factory=list, alias="requiredScopes", description="Scopes every token must carry."
    )
    group_claims: list[GroupClaim] = Field(
        default_factory=lambda: [GroupClaim.model_validate({"claim": "groups"})],
        alias="groupClaims",
        max_length=16,
        description="Where `subject.groups` come from: every listed claim, names merged in "
        "order (duplicates dropped). Default: the top-level `groups` claim. See docs/identity.md.",
    )
    agent_claims: list[NonEmptyStr] = Field(
        default_factory=lambda: ["azp", "client_id"],
        alias="agentClaims",
        max_length=8,
        description="Where the agent comes from when the token has no RFC 8693 `act` claim "
        "(`act.sub` always wins): claim names (`azp`, `client_id`, Okta `cid`, Entra ID v1.0 "
        "`appid`) or RFC 6901 JSON Pointers. Every listed claim present must be a string and "
        "all must agree, or the token is refused; none present refuses it too. Default: "
        "`[azp, client_id]`; `[]` accepts only `act`. See docs/identity.md.",
    )
    jwks_cache_seconds: int = Field(
        300,
        alias="jwksCacheSeconds",
        ge=1,
        le=86400,
        description="How long the issuer's key set is trusted before it is fetched again "
        "(a key removed at the issuer stops verifying tokens at most this long after).",
    )
    jwks_min_refresh_seconds: int = Field(
        10,
        alias="jwksMinRefreshSeconds",
        ge=1,
        le=3600,
        description="Least time between two key set fetches caused by tokens naming an "
        "unknown key id (a new key at the issuer is picked up on its first token).",
    )

    @field_validator("agent_claims")
    @classmethod
    def _valid_agent_claims(cls, value: list[str]) -> list[str]:
        for index, claim in enumerate(value):
            try:
                path = parse_claim_path(claim)
            except ValueError as error:
                raise ValueError(f"entry {index}: {error}") from error
            if path[0] == "act":
                raise ValueError(
                    f"entry {index} ({claim!r}): 'act' (RFC 8693) is always read first; "
                    "do not list it"
                )
        duplicates = sorted({claim for claim in value if value.count(claim) > 1})
        if duplicates:
            raise ValueError(f"{', '.join(map(repr, duplicates))} listed more than once")
        return value


class Audit(Model):
    """Decision records for this server."""

    failure_policy: Literal["Fail", "Ignore"] = Field(
        "Fail",
        alias="failurePolicy",
        description="Fail: deny calls when records cannot be written. Ignore: allow them anyway.",
    )
    arguments: Literal["Digest", "Redacted"] = Field(
        "Digest",
        description="Record call arguments as a digest, or as values with secrets redacted.",
    )


class Telemetry(Model):
    """Where this server's gateways send OpenTelemetry traces (docs/observability.md)."""

    otlp_endpoint: Annotated[str, StringConstraints(pattern=r"^https?://[^/\s]+")] | None = Field(
        None,
        alias="otlpEndpoint",
        description="OTLP/HTTP base URL (e.g. http://otel-collector.observability:4318); "
        "unset: the operator's default (chart value gateway.tracing.otlpEndpoint), or none.",
    )
    sample_ratio: float = Field(
        1.0,
        alias="sampleRatio",
        ge=0.0,
        le=1.0,
        description="Share of new traces sampled; a caller's sampled flag is followed.",
    )
    export_records: bool = Field(
        False,
        alias="exportRecords",
        description="Also export every decision record as an OTLP log record.",
    )


ConsentUrl = Annotated[
    str,
    StringConstraints(
        max_length=2048,
        pattern=r"^(https://[^/?#\s@]+|http://(localhost|127\.[0-9]+\.[0-9]+\.[0-9]+|\[::1\])"
        r"(:[0-9]{1,5})?)(/[^?#\s]*)?$",
    ),
]


class ConsentLink(Model):
    """Where this server's sidecars send humans to answer consent requests (docs/consent.md)."""

    url: ConsentUrl | None = Field(
        None,
        description="Base URL of the consent service for this server (https; plain http only "
        "to a loopback host, for development). Unset: the operator's default "
        "(chart value consent.publicUrl). No query or fragment: the link appends "
        "`/consent?r=...`.",
    )


class MCPServerSpec(Model):
    """The desired state of an MCPServer."""

    selector: LabelSelector = Field(description="Pods of this MCP server.")
    upstream: UpstreamSpec = Field(default_factory=lambda: UpstreamSpec.model_validate({}))
    gateway: GatewayPorts = Field(default_factory=lambda: GatewayPorts.model_validate({}))
    authentication: Authentication
    tool_pinning: Literal["Enforce", "Audit", "Disabled"] = Field(
        "Enforce",
        alias="toolPinning",
        description="Changed tool definitions: hidden and denied, only recorded, or ignored.",
    )
    audit: Audit = Field(default_factory=lambda: Audit.model_validate({}))
    telemetry: Telemetry = Field(default_factory=lambda: Telemetry.model_validate({}))
    max_body_bytes: int = Field(
        4 * 1024 * 1024, alias="maxBodyBytes", ge=1024, description="Largest accepted request."
    )
    consent: ConsentLink = Field(
        default_factory=lambda: ConsentLink.model_validate({}),
        description="The consent service this server's consent requests link to.",
    )

    @field_validator("gateway")
    @classmethod
    def _distinct_ports(cls, value: GatewayPorts) -> GatewayPorts:
        if value.port == value.admin_port:
            raise ValueError("port and adminPort must differ")
        return value


class MCPServerStatus(Model):
    """What the operator observed: bundle in force and sidecars running it."""

    conditions: list[StatusCondition] = Field(default_factory=list)
    bundle_digest: str | None = Field(None, alias="bundleDigest")
    bundle_serial: int | None = Field(None, alias="bundleSerial")
    sidecars_desired: int | None = Field(None, alias="sidecarsDesired")
    sidecars_ready: int | None = Field(None, alias="sidecarsReady")
    sidecars_in_sync: int | None = Field(None, alias="sidecarsInSync")
    tool_pins: dict[str, str] = Field(default_factory=dict, alias="toolPins")
    observed_generation: int | None = Field(None, alias="observedGeneration")


class MCPServer(Resource):
    """An MCP server whose pods get the gateway sidecar."""

    KIND = "MCPServer"
    PLURAL = "mcpservers"
    SHORT_NAMES = ("mcps",)

    kind: Literal["MCPServer"] = "MCPServer"
    spec: MCPServerSpec
    status: MCPServerStatus | None = None
