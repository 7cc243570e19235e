"""The gateway's settings: frozen dataclasses grouped by concern, from CLI flags or ``REMIT_*``.

Sidecar mode (in a cluster) reads the environment the operator's injection sets. Each field
names its variable and meaning; ``remit.settings`` loads them (the loader the operator uses
too) and writes the tables in docs/gateway.md from the same fields, one table per group.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from remit.audit.anchors import digest_key, read_anchor
from remit.audit.sinks import AuditSettings
from remit.audit.syncer import DEFAULT_SYNC_DELAY
from remit.audit.writer import DEFAULT_QUEUE_BYTES
from remit.errors import RemitError, SettingsError
from remit.gateway import values
from remit.gateway.connections import ADMIN_LIMITS, ConnectionLimits
from remit.gateway.drain import DEFAULT_GRACE
from remit.gateway.protocol import DEFAULT_MAX_BATCH
from remit.gateway.quotas import CallerLimits
from remit.gateway.refusals import DEFAULT_INTERVAL, DEFAULT_MAX_WINDOWS
from remit.gateway.state import DEFAULT_MAX_BUNDLE_AGE
from remit.gateway.tracing import TracingSettings
from remit.gateway.values import Address
from remit.policy.consentkeys import MAX_REQUEST_SECONDS
from remit.settings import group, load, setting


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    """The MCP server the gateway guards, on loopback."""

    url: str = setting(
        "http://127.0.0.1:8080/mcp",
        env="UPSTREAM",
        doc="The MCP server URL on loopback; its path is the path clients use.",
    )

    @property
    def mcp_path(self) -> str:
        """The MCP endpoint path clients use: the upstream's path."""
        return urlsplit(self.url).path or "/mcp"


@dataclass(frozen=True, slots=True)
class ListenAddresses:
    """Where the gateway listens: a port for MCP clients, one for the admin API."""

    mcp: Address = setting(
        Address("0.0.0.0", 9000),  # noqa: S104 - a sidecar listens on the pod IP
        env="LISTEN",
        doc="`host:port` for MCP clients.",
        parse=values.address,
        shown="`0.0.0.0:9000`",
    )
    admin: Address = setting(
        Address("0.0.0.0", 9901),  # noqa: S104
        env="ADMIN_LISTEN",
        doc="`host:port` of the admin API (bundle push, status, health, metrics).",
        parse=values.address,
        shown="`0.0.0.0:9901`",
    )
    asgi_server: Literal["granian", "uvicorn"] = setting(
        "uvicorn",
        env="ASGI_SERVER",
        doc="HTTP server: `uvicorn` (measured faster here) or `granian`.",
    )
    shutdown_grace: float = setting(
        DEFAULT_GRACE,
        env="SHUTDOWN_GRACE_SECONDS",
        doc="Seconds calls in flight may still finish after SIGTERM/SIGINT; then each is cut off "
        "(outcome `shutdown`, the client answered 503). Keep it below the pod's "
        "`terminationGracePeriodSeconds`.",
        parse=values.interval,
    )


@dataclass(frozen=True, slots=True)
class Instance:
    """Which gateway this is: the MCPServer it guards and its pod, named in every record."""

    server: str = setting(
        "",
        env="SERVER",
        doc="`namespace/name` of the MCPServer: in every record, and the only server whose "
        "bundles this gateway installs (required in sidecar mode).",
        parse=values.server_ref,
    )
    pod: str = setting(
        "",
        env="POD_NAME",
        doc="This pod's name, recorded in every decision record (its namespace is "
        "`REMIT_SERVER`'s: the operator injects a gateway only for a server of the pod's own "
        "namespace).",
        shown="the host name",
    )


@dataclass(frozen=True, slots=True)
class LogSettings:
    """The gateway's own log lines on stderr (decision records are the audit group's)."""

    level: str = setting(
        "WARNING",
        env="LOG_LEVEL",
        doc="Python log level: `DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL` "
        "(`--log-level` wins).",
        parse=values.log_level,
    )


@dataclass(frozen=True, slots=True)
class BundleSettings:
    """The policy the gateway enforces: bundles pushed by the operator, or a policy directory."""

    public_key: Path | None = setting(
        None,
        env="BUNDLE_PUBLIC_KEY",
        doc="Path of the Ed25519 public key (JWK or PEM) that pushed bundles must verify with.",
    )
    max_age: float = setting(
        DEFAULT_MAX_BUNDLE_AGE,
        env="MAX_BUNDLE_AGE_SECONDS",
        doc="A pushed bundle whose `issuedAt` is older is refused (422 `stale`); so is one "
        "more than 5 minutes in the future.",
        parse=values.positive_seconds,
    )
    policy_dirs: tuple[Path, ...] = ()  # standalone mode: `remit gateway -f DIR`


def _link_seconds(raw: str, variable: str) -> float:
    value = values.positive_seconds(raw, variable)
    if value > MAX_REQUEST_SECONDS:
        raise SettingsError(f"{variable}: at most {MAX_REQUEST_SECONDS} seconds, got {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class ConsentLinkSettings:
    """Where a call denied with `consent_required` sends the human (docs/consent.md)."""

    url: str = setting(
        "",
        env="CONSENT_URL",
        doc="Public URL of the consent service: a call denied with `consent_required` is "
        "answered with a link to it (empty: no link).",
    )
    key_file: Path | None = setting(
        None,
        env="CONSENT_KEY_FILE",
        doc="File holding the 32-byte key (raw or base64) that seals consent requests; the "
        "consent service has the same key.",
    )
    request_seconds: float = setting(
        900.0,
        env="CONSENT_REQUEST_SECONDS",
        doc="How long a consent request link stays valid (at most 3600: the consent service "
        "keeps a rotated key that long).",
        parse=_link_seconds,
    )
    key: bytes | None = None  # standalone: made for the run, shared in-process


@dataclass(frozen=True, slots=True)
class AuditVariables:
    """Decision records: where they go, how durable, and how long writing one may take.

    The ``REMIT_AUDIT_*`` variables, turned into the audit layer's ``AuditSettings`` by
    ``_audit``.
    """

    sink: Literal["stdout", "file"] = setting(
        "stdout", env="AUDIT_SINK", doc="Where decision records go: `stdout` or `file`."
    )
    file: Path | None = setting(None, env="AUDIT_FILE", doc="Path of the file sink.")
    fsync: bool = setting(
        True,
        env="AUDIT_FSYNC",
        doc="Make records durable (file sink): fsynced by a sync thread, group-committed.",
    )
    fsync_wait: bool = setting(
        True,
        env="AUDIT_FSYNC_WAIT",
        doc="Hold each answer until its call's decision record is fsynced (the fsync runs "
        "while the upstream works). `false`: records are synced behind, nothing waits.",
    )
    fsync_strict: bool = setting(
        False,
        env="AUDIT_FSYNC_STRICT",
        doc="With `REMIT_AUDIT_FSYNC_WAIT=true`: fsync each record before its call proceeds "
        "(the decision before forwarding, the outcome before the answer): two fsyncs on each "
        "call's path.",
    )
    sync_delay: float = setting(
        DEFAULT_SYNC_DELAY,
        env="AUDIT_SYNC_DELAY",
        doc="With the default fsync settings: seconds an outcome record may stay unsynced "
        "waiting for the next decision's fsync to cover it too (then it is synced on its own). "
        "Must be less than `REMIT_AUDIT_TIMEOUT` in that mode (only).",
        parse=values.seconds,
    )
    resume_broken: bool = setting(
        False,
        env="AUDIT_RESUME_BROKEN",
        doc="Start a new chain after a damaged file tail (after a marker naming the damage).",
    )
    timeout: float = setting(
        5.0,
        env="AUDIT_TIMEOUT",
        doc="Seconds a record may take to be written before calls are denied and the sink "
        "reported stalled.",
        parse=values.seconds,
    )
    queue_bytes: int = setting(
        DEFAULT_QUEUE_BYTES,
        env="AUDIT_QUEUE_BYTES",
        doc="Bytes of records waiting to be written beyond which calls are denied.",
        parse=values.size,
    )
    digest_key_file: Path | None = setting(
        None,
        env="AUDIT_DIGEST_KEY_FILE",
        doc="File holding the key (at least 32 bytes) that argument digests are HMAC-SHA256 "
        "under, for a standalone gateway (in a cluster the operator delivers it: "
        "`REMIT_AUDIT_DIGEST_KEY_DELIVERED`). Unset: `REMIT_AUDIT_DIGEST_KEY`.",
    )
    digest_key: str = setting(
        "",
        env="AUDIT_DIGEST_KEY",
        doc="The digest key itself (at least 32 characters), for a standalone gateway. Neither "
        "set: digests are plain sha256, which a guessable argument can be found from.",
    )
    digest_key_delivered: bool = setting(
        False,
        env="AUDIT_DIGEST_KEY_DELIVERED",
        doc="The operator delivers the digest key over the admin port (`PUT /v1/audit-key`, "
        "signed, encrypted to this process; the webhook sets this). Until it has, the sidecar "
        "is not ready and refuses every MCP request (503, `audit_unavailable`).",
    )
    anchor_file: Path | None = setting(
        None,
        env="AUDIT_ANCHOR_FILE",
        doc='File holding this pod\'s last anchored chain head (`{"head": ...}`, written by '
        "the operator): a restarted sidecar's new chain names it. Missing file: none.",
    )


def _audit(variables: AuditVariables) -> AuditSettings:
    try:
        return AuditSettings(
            digest_key=digest_key(variables.digest_key_file, variables.digest_key),
            key_delivered=variables.digest_key_delivered,
            anchor=read_anchor(variables.anchor_file),
            sink=variables.sink,
            path=variables.file,
            fsync=variables.fsync,
            fsync_wait=variables.fsync_wait,
            fsync_strict=variables.fsync_strict,
            sync_delay=variables.sync_delay,
            resume_broken=variables.resume_broken,
            timeout=variables.timeout,
            max_queue_bytes=variables.queue_bytes,
        )
    except RemitError as exc:
        raise SettingsError(f"REMIT_AUDIT_*: {exc}") from exc


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """Bounds on each request from an MCP client."""

    max_body_bytes: int = setting(
        4 * 1024 * 1024,
        env="MAX_BODY_BYTES",
        doc="Largest accepted request body, in bytes.",
        parse=values.size,
    )
    max_batch: int = setting(
        DEFAULT_MAX_BATCH,
        env="MAX_BATCH",
        doc="Most messages in one JSON-RPC batch; a larger batch is refused whole (400).",
        parse=values.positive,
    )


@dataclass(frozen=True, slots=True)
class RefusalRecords:
    """Records of refused callers, aggregated per source (and per caller once authenticated)."""

    interval: float = setting(
        DEFAULT_INTERVAL,
        env="REFUSAL_INTERVAL",
        doc="Seconds during which identical refusals from one source (and caller, once "
        "authenticated) share one summary record (`0`: one record each).",
        parse=values.interval,
    )
    windows: int = setting(
        DEFAULT_MAX_WINDOWS,
        env="REFUSAL_WINDOWS",
        doc="Most sources whose refusals are aggregated at once; beyond, one shared window.",
        parse=values.positive,
    )


_DEFAULT = ConnectionLimits()


@dataclass(frozen=True, slots=True)
class LimitVariables:
    """Connections on both ports: how many, how long each phase of a request may take, how
    large its headers may be.

    The connection-limit variables (remit.gateway.connections), turned into ``Listeners`` by
    ``_listeners``.
    """

    max_connections: int | None = setting(
        None,
        env="MAX_CONNECTIONS",
        doc="Open client connections on the MCP port; beyond it the one waiting longest without "
        "a request is closed. Unset: lowered to fit `ulimit -n`; set: a start that cannot "
        "honour it fails.",
        parse=values.count,
        shown=f"`{_DEFAULT.max_connections}`",
    )
    max_concurrent_requests: int = setting(
        _DEFAULT.max_concurrent_requests,
        env="MAX_CONCURRENT_REQUESTS",
        doc="MCP requests in progress at once (SSE streams included); more get 503.",
        parse=values.count,
    )
    idle_timeout: float = setting(
        _DEFAULT.idle_timeout,
        env="IDLE_TIMEOUT_SECONDS",
        doc="Seconds a connection may wait for a request to begin (both ports).",
        parse=values.positive_seconds,
    )
    header_timeout: float = setting(
        _DEFAULT.header_timeout,
        env="HEADER_TIMEOUT_SECONDS",
        doc="Seconds from a request's first byte to the end of its headers; then 408.",
        parse=values.positive_seconds,
    )
    body_timeout: float = setting(
        _DEFAULT.body_timeout,
        env="BODY_TIMEOUT_SECONDS",
        doc="Seconds from the end of the headers to the end of the body; then 408.",
        parse=values.positive_seconds,
    )
    max_header_bytes: int = setting(
        _DEFAULT.max_header_bytes,
        env="MAX_HEADER_BYTES",
        doc="Bytes of request line and headers; more get 431.",
        parse=values.count,
    )
    max_headers: int = setting(
        _DEFAULT.max_headers,
        env="MAX_HEADERS",
        doc="Request headers; more get 431.",
        parse=values.count,
    )
    admin_max_connections: int = setting(
        ADMIN_LIMITS.max_connections,
        env="ADMIN_MAX_CONNECTIONS",
        doc="Open connections on the admin port (its own limits, so MCP clients cannot starve it).",
        parse=values.count,
    )


@dataclass(frozen=True, slots=True)
class Listeners:
    """Both listeners' connection limits; ``fit`` lowers the MCP connection cap to the
    file-descriptor limit (when ``REMIT_MAX_CONNECTIONS`` is unset)."""

    mcp: ConnectionLimits = _DEFAULT
    admin: ConnectionLimits = ADMIN_LIMITS
    fit: bool = True


def _listeners(variables: LimitVariables) -> Listeners:
    shared = dataclasses.replace(
        _DEFAULT,
        idle_timeout=variables.idle_timeout,
        header_timeout=variables.header_timeout,
        body_timeout=variables.body_timeout,
        max_header_bytes=variables.max_header_bytes,
        max_headers=variables.max_headers,
    )
    mcp = dataclasses.replace(
        shared,
        max_connections=variables.max_connections or _DEFAULT.max_connections,
        max_concurrent_requests=variables.max_concurrent_requests,
    )
    admin = dataclasses.replace(
        shared,
        max_connections=variables.admin_max_connections,
        max_concurrent_requests=ADMIN_LIMITS.max_concurrent_requests,
    )
    return Listeners(mcp, admin, fit=variables.max_connections is None)


_CALLERS = CallerLimits()


@dataclass(frozen=True, slots=True)
class CallerVariables:
    """What one caller (issuer, subject, agent) may hold open, and for how long.

    Sessions and GET streams per caller, and stream lifetimes (remit.gateway.quotas,
    remit.gateway.sessions), turned into ``CallerLimits`` by ``_callers``.
    """

    max_sessions: int = setting(
        _CALLERS.max_sessions,
        env="MAX_SESSIONS",
        doc="Session bindings kept in all; when full, the caller holding the most loses its "
        "least recently used one.",
        parse=values.count,
    )
    sessions_per_identity: int = setting(
        _CALLERS.sessions_per_identity,
        env="MAX_SESSIONS_PER_IDENTITY",
        doc="Sessions one caller (issuer, subject, agent) may hold; a further `initialize` is "
        "refused (`session_quota`).",
        parse=values.count,
    )
    streams_per_identity: int = setting(
        _CALLERS.streams_per_identity,
        env="MAX_STREAMS_PER_IDENTITY",
        doc="GET streams one caller may hold open; more are refused with 429 (`stream_quota`).",
        parse=values.count,
    )
    stream_lifetime: float = setting(
        _CALLERS.stream_lifetime,
        env="STREAM_LIFETIME_SECONDS",
        doc="Seconds after which the gateway closes a GET stream cleanly (`stream_closed`); "
        "clients resume with `Last-Event-ID`.",
        parse=values.positive_seconds,
    )
    notice_stream_timeout: float = setting(
        _CALLERS.notice_stream_timeout,
        env="NOTICE_STREAM_TIMEOUT_SECONDS",
        doc="Seconds without an event after which an event stream answering a POST of only "
        "notifications or responses is closed (`stream_closed`).",
        parse=values.positive_seconds,
    )


def _callers(variables: CallerVariables) -> CallerLimits:
    return CallerLimits(
        max_sessions=variables.max_sessions,
        sessions_per_identity=variables.sessions_per_identity,
        streams_per_identity=variables.streams_per_identity,
        stream_lifetime=variables.stream_lifetime,
        notice_stream_timeout=variables.notice_stream_timeout,
    )


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Everything one gateway process needs, one group per concern; nothing is read from
    globals."""

    upstream: UpstreamTarget = group(UpstreamTarget, title="Upstream")
    listen: ListenAddresses = group(ListenAddresses, title="Listeners")
    instance: Instance = group(Instance, title="Identity")
    bundle: BundleSettings = group(BundleSettings, title="Policy bundle")
    audit: AuditSettings = group(AuditSettings, title="Audit", source=AuditVariables, build=_audit)
    limits: RequestLimits = group(RequestLimits, title="Request limits")
    refusals: RefusalRecords = group(RefusalRecords, title="Refusals")
    connections: Listeners = group(
        Listeners, title="Connection limits", source=LimitVariables, build=_listeners
    )
    logs: LogSettings = group(LogSettings, title="Logs")
    consent: ConsentLinkSettings = group(ConsentLinkSettings, title="Consent")
    callers: CallerLimits = group(
        CallerLimits, title="Caller quotas", source=CallerVariables, build=_callers
    )
    tracing: TracingSettings = group(TracingSettings, title="Tracing")


def from_environment(env: Mapping[str, str] | None = None) -> GatewaySettings:
    """Sidecar settings from ``REMIT_*`` variables (see docs/gateway.md)."""
    settings = load(GatewaySettings, env)
    if not settings.instance.pod:
        instance = dataclasses.replace(settings.instance, pod=socket.gethostname())
        settings = dataclasses.replace(settings, instance=instance)
    return settings
