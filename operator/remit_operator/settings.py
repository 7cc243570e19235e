"""The operator's settings: frozen dataclasses grouped by concern, read from ``REMIT_*`` variables.

The Helm chart sets these; the names are stable API and every variable is optional. Each field
names its variable and meaning; ``remit.settings`` loads them (the loader the gateway uses too)
and writes the tables in docs/operator.md from the same fields, one table per group.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from remit import errors
from remit.settings import PREFIX, group, load, setting
from remit_operator.errors import SettingsError

SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
_LOG_LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})


@dataclass(frozen=True, slots=True)
class KubeSettings:
    """The operator in its cluster: its namespace, kopf peering, liveness and logs."""

    namespace: str = setting(
        "remit-system",
        env="NAMESPACE",
        doc="Namespace the operator runs in; holds the signing Secret. Never injected.",
    )
    peering: str | None = setting(
        None,
        env="PEERING",
        doc=(
            "kopf peering name: with more than one replica, only the leader acts. Unset: "
            "standalone. Needs kopf's peering CRD (the chart ships it)."
        ),
    )
    peering_lifetime: int = setting(
        60,
        env="PEERING_LIFETIME",
        doc=(
            "Seconds a replica's peering heartbeat stays valid (kopf's peering lifetime); it is "
            "renewed 5 to 10 s before it runs out. A replica that dies without a word (SIGKILL, "
            "a lost node) is presumed dead this long after its last heartbeat, so a standby "
            "takes over within this time plus a few seconds. At least 10."
        ),
    )
    health_port: int = setting(
        8080,
        env="HEALTH_PORT",
        doc="kopf's liveness endpoint `/healthz`.",
    )
    log_level: str = setting(
        "INFO",
        env="LOG_LEVEL",
        doc="Python log level.",
    )

    @property
    def protected_namespaces(self) -> frozenset[str]:
        """Namespaces whose pods are never injected: Kubernetes' own and the operator's."""
        return SYSTEM_NAMESPACES | {self.namespace}

    def check(self) -> None:
        """Reject values that cannot work, naming the variable."""
        if self.log_level.upper() not in _LOG_LEVELS:
            raise SettingsError(
                f"REMIT_LOG_LEVEL: expected one of {', '.join(sorted(_LOG_LEVELS))}"
            )
        if self.peering_lifetime < 10:
            raise SettingsError("REMIT_PEERING_LIFETIME must be >= 10 (seconds)")


@dataclass(frozen=True, slots=True)
class SigningSettings:
    """The bundle signing key and where its public half is published."""

    secret: str = setting(
        "remit-signing-key",
        env="SIGNING_SECRET",
        doc="Secret with the Ed25519 signing key (created if absent).",
    )
    public_key_configmap: str = setting(
        "remit-bundle-key",
        env="PUBLIC_KEY_CONFIGMAP",
        doc=(
            "ConfigMap the operator writes into every namespace with an MCPServer (`public.jwk`)."
        ),
    )
    accept_v1_seals: bool = setting(
        True,
        env="ACCEPT_V1_SEALS",
        doc=(
            "Count pods the previous release injected (v1 injection seal) as sidecars when "
            "every volume their gateway mounts is exactly as that release injected it, so they "
            "keep receiving bundles until re-created. Set `false` once every governed pod has "
            "been re-created; a later release drops it."
        ),
    )
    v1_seals_before: str = setting(
        "",
        env="V1_SEALS_BEFORE",
        doc=(
            "RFC 3339 time (with offset): a v1 seal counts only on a pod the API server created "
            "before it, so a v1 seal copied into a new pod never does. Set it to when this "
            "release replaced the previous one. Empty: the time this operator process started "
            "(moves forward on each restart: set it)."
        ),
    )

    def v1_cutoff(self, started: datetime) -> datetime:
        """When v1 seals stop counting for new pods (``started``: this process's start)."""
        if not self.v1_seals_before:
            return started
        return _rfc3339(self.v1_seals_before)

    def check(self) -> None:
        """Reject values that cannot work, naming the variable."""
        if self.v1_seals_before:
            self.v1_cutoff(datetime.now(UTC))


def _rfc3339(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)  # reads the Z suffix itself
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise SettingsError(
            "REMIT_V1_SEALS_BEFORE: expected an RFC 3339 time with an offset, "
            "e.g. 2026-12-02T06:00:00Z"
        )
    return when


@dataclass(frozen=True, slots=True)
class ConsentDelivery:
    """Where sidecars link `consent_required` denials, and the key they seal requests with."""

    public_url: str = setting(
        "",
        env="CONSENT_PUBLIC_URL",
        doc="The consent page's public base URL, for MCPServers without `spec.consent.url`; "
        "empty: only those with it get consent links.",
    )
    key_secret: str = setting(
        "remit-consent-key",
        env="CONSENT_KEY_SECRET",
        doc="Secret in `REMIT_NAMESPACE` whose `key` is the 32-byte key sealing consent "
        "requests (shared with the consent service); delivered encrypted to each sidecar.",
    )

    def check(self) -> None:
        """The URL, when set, is absolute http(s)."""
        if self.public_url and not self.public_url.startswith(("https://", "http://")):
            raise SettingsError("REMIT_CONSENT_PUBLIC_URL: expected an http(s) URL")


@dataclass(frozen=True, slots=True)
class EvidenceSettings:
    """The audit evidence the operator keeps: the argument digest keys it delivers."""

    key_secret: str = setting(
        "remit-audit-key",
        env="AUDIT_KEY_SECRET",
        doc="Secret in `REMIT_NAMESPACE` whose `key` (at least 32 bytes) each server's argument "
        "digest key is derived from (HMAC-SHA256 over the server's namespace/name); created "
        "when absent, delivered encrypted to each sidecar. Replace `key` to rotate.",
    )


@dataclass(frozen=True, slots=True)
class GatewayInjection:
    """The gateway container the admission webhook injects: image, resources, sidecar kind."""

    image: str = setting(
        "ghcr.io/remit-dev/remit:latest",
        env="GATEWAY_IMAGE",
        doc="Image of the injected gateway container.",
    )
    otlp_endpoint: str = setting(
        "",
        env="GATEWAY_OTLP_ENDPOINT",
        doc="OTLP/HTTP base URL injected sidecars send traces to when their MCPServer sets no "
        "`spec.telemetry.otlpEndpoint`; empty: no tracing.",
    )
    cpu_request: str = setting(
        "50m",
        env="GATEWAY_CPU_REQUEST",
        doc="Sidecar CPU request.",
    )
    memory_request: str = setting(
        "64Mi",
        env="GATEWAY_MEMORY_REQUEST",
        doc="Sidecar memory request.",
    )
    memory_limit: str = setting(
        "256Mi",
        env="GATEWAY_MEMORY_LIMIT",
        doc="Sidecar memory limit.",
    )
    native_sidecar: str = setting(
        "auto",
        env="GATEWAY_NATIVE_SIDECAR",
        doc=(
            "`true`: inject the gateway as a native sidecar (first init container, "
            "`restartPolicy: Always`), so Jobs complete and the app starts after the gateway "
            "listens. `false`: a plain container. `auto`: native when the API server's `/version`"
            " says 1.29 or later (read at most every 10 minutes), plain when unknown."
        ),
    )
    image_pull_secrets: str = setting(
        "",
        env="GATEWAY_IMAGE_PULL_SECRETS",
        doc=(
            "Comma-separated Secret names added to `imagePullSecrets` of every injected pod that "
            "lacks them, so the sidecar image can be pulled from a private registry. They must "
            "exist in the pod's namespace."
        ),
    )

    @property
    def pull_secrets(self) -> tuple[str, ...]:
        """The pull-secret names from REMIT_GATEWAY_IMAGE_PULL_SECRETS."""
        names = (n.strip() for n in self.image_pull_secrets.split(","))
        return tuple(dict.fromkeys(n for n in names if n))

    def check(self) -> None:
        """Reject values that cannot work, naming the variable."""
        if self.native_sidecar not in ("auto", "true", "false"):
            raise SettingsError("REMIT_GATEWAY_NATIVE_SIDECAR: expected auto, true or false")


@dataclass(frozen=True, slots=True)
class WebhookTls:
    """The admission webhook's serving certificate: files, or a Secret the operator keeps."""

    cert_file: str | None = setting(
        None,
        env="WEBHOOK_CERT_FILE",
        doc=(
            "Serving certificate (e.g. from cert-manager). Unset: a self-signed pair is made at "
            "start, valid for the webhook Service's DNS names. Set both or neither."
        ),
    )
    key_file: str | None = setting(
        None,
        env="WEBHOOK_KEY_FILE",
        doc="Private key of `REMIT_WEBHOOK_CERT_FILE`.",
    )
    secret: str | None = setting(
        None,
        env="WEBHOOK_TLS_SECRET",
        doc=(
            "The operator keeps its serving certificate in this `kubernetes.io/tls` Secret in "
            "`REMIT_NAMESPACE`: made at first start (a concurrent replica's copy wins), reused by"
            " every start and replica, renewed 30 days before expiry with the previous CA kept in"
            " `ca.crt` while it is valid. Excludes `REMIT_WEBHOOK_CERT_FILE`. The chart's default"
            " (`webhook.tls.operatorManaged`)."
        ),
    )

    def check(self) -> None:
        """Reject values that cannot work, naming the variable."""
        if self.secret and self.cert_file:
            raise SettingsError(
                "REMIT_WEBHOOK_TLS_SECRET and REMIT_WEBHOOK_CERT_FILE exclude each other"
            )
        if (self.cert_file is None) != (self.key_file is None):
            raise SettingsError("REMIT_WEBHOOK_CERT_FILE and REMIT_WEBHOOK_KEY_FILE go together")


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """The admission webhook (HTTPS): where it listens, and the configuration calling it."""

    host: str = setting(
        "0.0.0.0",  # noqa: S104 - the webhook must be reachable from the apiserver
        env="WEBHOOK_HOST",
        doc="Address the admission webhook (HTTPS) listens on.",
    )
    port: int = setting(
        9443,
        env="WEBHOOK_PORT",
        doc="Its port.",
    )
    service: str | None = setting(
        None,
        env="WEBHOOK_SERVICE",
        doc=(
            "`namespace/name` of the Service in front of the webhook. When set, the operator "
            "creates/updates the MutatingWebhookConfiguration `remit-sidecar-injector` with its "
            "CA bundle. Unset: the chart owns that configuration."
        ),
    )
    configuration: str | None = setting(
        None,
        env="WEBHOOK_CONFIGURATION",
        doc=(
            "Name of the MutatingWebhookConfiguration (rendered by the chart without a caBundle) "
            "whose webhooks get `ca.crt` as `clientConfig.caBundle`; the certificate's DNS names "
            "come from the Service it calls."
        ),
    )
    tls: WebhookTls = group(WebhookTls)

    def check(self) -> None:
        """Reject values that cannot work, naming the variable."""
        if not 0 < self.port < 65536:
            raise SettingsError("REMIT_WEBHOOK_PORT: expected 1..65535")
        self.tls.check()
        if self.service is not None and self.service.count("/") != 1:
            raise SettingsError("REMIT_WEBHOOK_SERVICE: expected namespace/name")


@dataclass(frozen=True, slots=True)
class PushSettings:
    """Requests to sidecars: timeouts, retries and how many are in flight."""

    timeout_seconds: float = setting(
        2.0,
        env="PUSH_TIMEOUT_SECONDS",
        doc="Timeout of one push or status request to a sidecar.",
    )
    retries: int = setting(
        3,
        env="PUSH_RETRIES",
        doc="Retries per sidecar after the first attempt (connection errors, timeouts, 5xx).",
    )
    backoff_seconds: float = setting(
        0.1,
        env="PUSH_BACKOFF_SECONDS",
        doc="First retry delay; doubles on each retry.",
    )
    concurrency: int = setting(
        32,
        env="PUSH_CONCURRENCY",
        doc=(
            "Sidecar requests in flight at once for one MCPServer: a server whose pods hang holds"
            " at most this many slots."
        ),
    )
    concurrency_total: int = setting(
        256,
        env="PUSH_CONCURRENCY_TOTAL",
        doc="Sidecar requests in flight overall (at least `REMIT_PUSH_CONCURRENCY`).",
    )
    deadline_seconds: float = setting(
        10.0,
        env="PUSH_DEADLINE_SECONDS",
        doc=(
            "Longest push round of one MCPServer: sidecars that have not answered by then count "
            "as failed and are tried again within seconds."
        ),
    )

    def check(self) -> None:
        """Reject values that cannot work, naming the variable."""
        if self.timeout_seconds <= 0:
            raise SettingsError("REMIT_PUSH_TIMEOUT_SECONDS must be > 0")
        if self.retries < 0 or self.backoff_seconds < 0:
            raise SettingsError("REMIT_PUSH_RETRIES and REMIT_PUSH_BACKOFF_SECONDS must be >= 0")
        if self.concurrency < 1:
            raise SettingsError("REMIT_PUSH_CONCURRENCY must be >= 1")
        if self.concurrency_total < self.concurrency:
            raise SettingsError("REMIT_PUSH_CONCURRENCY_TOTAL must be >= REMIT_PUSH_CONCURRENCY")
        if self.deadline_seconds <= 0:
            raise SettingsError("REMIT_PUSH_DEADLINE_SECONDS must be > 0")


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """Keeping sidecars on the current bundle, and the bundle fresh, between changes."""

    resync_seconds: float = setting(
        30.0,
        env="RESYNC_SECONDS",
        doc=(
            "How often every sidecar's digest (and tool pins) is read; a sidecar with another "
            "digest is pushed again."
        ),
    )
    bundle_refresh_seconds: float = setting(
        86400.0,
        env="BUNDLE_REFRESH_SECONDS",
        doc=(
            "An unchanged bundle this old is signed again (new `issuedAt` and serial); keep it "
            "well below the sidecars' `REMIT_MAX_BUNDLE_AGE_SECONDS` (7 days), which refuse "
            "older bundles."
        ),
    )

    def check(self) -> None:
        """Reject values that cannot work, naming the variable."""
        if self.bundle_refresh_seconds <= 0:
            raise SettingsError("REMIT_BUNDLE_REFRESH_SECONDS must be > 0")
        if self.resync_seconds <= 0:
            raise SettingsError("REMIT_RESYNC_SECONDS must be > 0")


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """The operator's Prometheus endpoint and who may scrape the sidecars'."""

    port: int = setting(
        9090,
        env="METRICS_PORT",
        doc=(
            "Prometheus `/metrics` of the operator (syncs, sync time, pushes by result, sidecars "
            "desired/ready/in sync per MCPServer); `0` turns it off."
        ),
    )
    scraper: str = setting(
        "",
        env="METRICS_SCRAPER",
        doc=(
            'A NetworkPolicy peer as JSON, e.g. `{"namespaceSelector": {"matchLabels": '
            '{"kubernetes.io/metadata.name": "monitoring"}}, "podSelector": {"matchLabels": '
            '{"app.kubernetes.io/name": "prometheus"}}}`: every MCPServer\'s NetworkPolicy admits '
            "it to the sidecars' admin port, where `/metrics` is served."
        ),
    )

    @property
    def scraper_peer(self) -> dict[str, Any] | None:
        """REMIT_METRICS_SCRAPER as a NetworkPolicy peer, or None when unset."""
        if not self.scraper:
            return None
        try:
            peer = json.loads(self.scraper)
        except ValueError as exc:
            raise SettingsError(f"REMIT_METRICS_SCRAPER: not JSON: {exc}") from exc
        allowed = {"namespaceSelector", "podSelector"}
        if (
            not isinstance(peer, dict)
            or not peer
            or not set(peer) <= allowed
            or not all(isinstance(v, dict) for v in peer.values())
        ):
            raise SettingsError(
                "REMIT_METRICS_SCRAPER: expected a JSON object with namespaceSelector and/or "
                'podSelector label selectors, e.g. {"namespaceSelector": {"matchLabels": '
                '{"kubernetes.io/metadata.name": "monitoring"}}}'
            )
        return peer

    def check(self) -> None:
        """Reject values that cannot work, naming the variable."""
        if not 0 <= self.port < 65536:
            raise SettingsError("REMIT_METRICS_PORT: expected 0 (off) or 1..65535")
        self.scraper_peer  # noqa: B018 - raises SettingsError naming the variable


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the operator can be told, one group per concern."""

    kube: KubeSettings = group(KubeSettings, title="Cluster and process")
    signing: SigningSettings = group(SigningSettings, title="Signing key")
    gateway: GatewayInjection = group(GatewayInjection, title="Injected gateway")
    webhook: WebhookSettings = group(WebhookSettings, title="Admission webhook")
    push: PushSettings = group(PushSettings, title="Pushes to sidecars")
    sync: SyncSettings = group(SyncSettings, title="Resync and refresh")
    metrics: MetricsSettings = group(MetricsSettings, title="Metrics")
    consent: ConsentDelivery = group(ConsentDelivery, title="Consent links")
    evidence: EvidenceSettings = group(EvidenceSettings, title="Audit evidence")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``REMIT_*`` variables; raise ``SettingsError`` naming a bad one."""
        try:
            settings = load(cls, environ)
        except errors.SettingsError as exc:
            raise SettingsError(str(exc)) from exc
        settings.check()
        return settings

    def check(self) -> None:
        """Reject values that cannot work, naming the variable."""
        self.kube.check()
        self.signing.check()
        self.webhook.check()
        self.metrics.check()
        self.push.check()
        self.sync.check()
        self.gateway.check()
        self.consent.check()


__all__ = ["PREFIX", "SYSTEM_NAMESPACES", "Settings"]
