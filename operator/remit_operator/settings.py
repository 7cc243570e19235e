"""The operator's settings: one frozen dataclass read from ``REMIT_``-prefixed variables.

The Helm chart sets these; the names are stable API and every variable is optional. Each field
names its variable and meaning; ``remit.settings`` loads them (the loader the gateway uses too)
and writes the table in docs/operator.md from the same fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from remit import errors
from remit.settings import PREFIX, load, setting
from remit_operator.errors import SettingsError

SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
_LOG_LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the operator can be told; see the module docstring for the variables."""

    namespace: str = setting(
        "remit-system",
        env="NAMESPACE",
        doc="Namespace the operator runs in; holds the signing Secret. Never injected.",
    )
    signing_secret: str = setting(
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
    gateway_image: str = setting(
        "ghcr.io/remit-dev/remit:latest",
        env="GATEWAY_IMAGE",
        doc="Image of the injected gateway container.",
    )
    gateway_cpu_request: str = setting(
        "50m",
        env="GATEWAY_CPU_REQUEST",
        doc="Sidecar CPU request.",
    )
    gateway_memory_request: str = setting(
        "64Mi",
        env="GATEWAY_MEMORY_REQUEST",
        doc="Sidecar memory request.",
    )
    gateway_memory_limit: str = setting(
        "256Mi",
        env="GATEWAY_MEMORY_LIMIT",
        doc="Sidecar memory limit.",
    )
    gateway_native_sidecar: str = setting(
        "auto",
        env="GATEWAY_NATIVE_SIDECAR",
        doc=(
            "`true`: inject the gateway as a native sidecar (first init container, "
            "`restartPolicy: Always`), so Jobs complete and the app starts after the gateway "
            "listens. `false`: a plain container. `auto`: native when the API server's `/version`"
            " says 1.29 or later (read at most every 10 minutes), plain when unknown."
        ),
    )
    gateway_image_pull_secrets: str = setting(
        "",
        env="GATEWAY_IMAGE_PULL_SECRETS",
        doc=(
            "Comma-separated Secret names added to `imagePullSecrets` of every injected pod that "
            "lacks them, so the sidecar image can be pulled from a private registry. They must "
            "exist in the pod's namespace."
        ),
    )
    webhook_host: str = setting(
        "0.0.0.0",  # noqa: S104 - the webhook must be reachable from the apiserver
        env="WEBHOOK_HOST",
        doc="Address the admission webhook (HTTPS) listens on.",
    )
    webhook_port: int = setting(
        9443,
        env="WEBHOOK_PORT",
        doc="Its port.",
    )
    webhook_cert_file: str | None = setting(
        None,
        env="WEBHOOK_CERT_FILE",
        doc=(
            "Serving certificate (e.g. from cert-manager). Unset: a self-signed pair is made at "
            "start, valid for the webhook Service's DNS names. Set both or neither."
        ),
    )
    webhook_key_file: str | None = setting(
        None,
        env="WEBHOOK_KEY_FILE",
        doc="Private key of `REMIT_WEBHOOK_CERT_FILE`.",
    )
    webhook_service: str | None = setting(
        None,
        env="WEBHOOK_SERVICE",
        doc=(
            "`namespace/name` of the Service in front of the webhook. When set, the operator "
            "creates/updates the MutatingWebhookConfiguration `remit-sidecar-injector` with its "
            "CA bundle. Unset: the chart owns that configuration."
        ),
    )
    webhook_tls_secret: str | None = setting(
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
    webhook_configuration: str | None = setting(
        None,
        env="WEBHOOK_CONFIGURATION",
        doc=(
            "Name of the MutatingWebhookConfiguration (rendered by the chart without a caBundle) "
            "whose webhooks get `ca.crt` as `clientConfig.caBundle`; the certificate's DNS names "
            "come from the Service it calls."
        ),
    )
    push_timeout_seconds: float = setting(
        2.0,
        env="PUSH_TIMEOUT_SECONDS",
        doc="Timeout of one push or status request to a sidecar.",
    )
    push_retries: int = setting(
        3,
        env="PUSH_RETRIES",
        doc="Retries per sidecar after the first attempt (connection errors, timeouts, 5xx).",
    )
    push_backoff_seconds: float = setting(
        0.1,
        env="PUSH_BACKOFF_SECONDS",
        doc="First retry delay; doubles on each retry.",
    )
    push_concurrency: int = setting(
        32,
        env="PUSH_CONCURRENCY",
        doc=(
            "Sidecar requests in flight at once for one MCPServer: a server whose pods hang holds"
            " at most this many slots."
        ),
    )
    push_concurrency_total: int = setting(
        256,
        env="PUSH_CONCURRENCY_TOTAL",
        doc="Sidecar requests in flight overall (at least `REMIT_PUSH_CONCURRENCY`).",
    )
    push_deadline_seconds: float = setting(
        10.0,
        env="PUSH_DEADLINE_SECONDS",
        doc=(
            "Longest push round of one MCPServer: sidecars that have not answered by then count "
            "as failed and are tried again within seconds."
        ),
    )
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
    metrics_scraper: str = setting(
        "",
        env="METRICS_SCRAPER",
        doc=(
            'A NetworkPolicy peer as JSON, e.g. `{"namespaceSelector": {"matchLabels": '
            '{"kubernetes.io/metadata.name": "monitoring"}}, "podSelector": {"matchLabels": '
            '{"app.kubernetes.io/name": "prometheus"}}}`: every MCPServer\'s NetworkPolicy admits '
            "it to the sidecars' admin port, where `/metrics` is served."
        ),
    )
    health_port: int = setting(
        8080,
        env="HEALTH_PORT",
        doc="kopf's liveness endpoint `/healthz`.",
    )
    metrics_port: int = setting(
        9090,
        env="METRICS_PORT",
        doc=(
            "Prometheus `/metrics` of the operator (syncs, sync time, pushes by result, sidecars "
            "desired/ready/in sync per MCPServer); `0` turns it off."
        ),
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
    log_level: str = setting(
        "INFO",
        env="LOG_LEVEL",
        doc="Python log level.",
    )

    @property
    def gateway_pull_secrets(self) -> tuple[str, ...]:
        """The pull-secret names from REMIT_GATEWAY_IMAGE_PULL_SECRETS."""
        names = (n.strip() for n in self.gateway_image_pull_secrets.split(","))
        return tuple(dict.fromkeys(n for n in names if n))

    @property
    def metrics_scraper_peer(self) -> dict[str, Any] | None:
        """REMIT_METRICS_SCRAPER as a NetworkPolicy peer, or None when unset."""
        if not self.metrics_scraper:
            return None
        try:
            peer = json.loads(self.metrics_scraper)
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

    @property
    def protected_namespaces(self) -> frozenset[str]:
        """Namespaces whose pods are never injected: Kubernetes' own and the operator's."""
        return SYSTEM_NAMESPACES | {self.namespace}

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
        if self.log_level.upper() not in _LOG_LEVELS:
            raise SettingsError(
                f"REMIT_LOG_LEVEL: expected one of {', '.join(sorted(_LOG_LEVELS))}"
            )
        if not 0 < self.webhook_port < 65536:
            raise SettingsError("REMIT_WEBHOOK_PORT: expected 1..65535")
        if not 0 <= self.metrics_port < 65536:
            raise SettingsError("REMIT_METRICS_PORT: expected 0 (off) or 1..65535")
        if self.bundle_refresh_seconds <= 0:
            raise SettingsError("REMIT_BUNDLE_REFRESH_SECONDS must be > 0")
        if self.push_timeout_seconds <= 0 or self.resync_seconds <= 0:
            raise SettingsError("REMIT_PUSH_TIMEOUT_SECONDS and REMIT_RESYNC_SECONDS must be > 0")
        if self.push_retries < 0 or self.push_backoff_seconds < 0:
            raise SettingsError("REMIT_PUSH_RETRIES and REMIT_PUSH_BACKOFF_SECONDS must be >= 0")
        if self.push_concurrency < 1:
            raise SettingsError("REMIT_PUSH_CONCURRENCY must be >= 1")
        if self.peering_lifetime < 10:
            raise SettingsError("REMIT_PEERING_LIFETIME must be >= 10 (seconds)")
        if self.push_concurrency_total < self.push_concurrency:
            raise SettingsError("REMIT_PUSH_CONCURRENCY_TOTAL must be >= REMIT_PUSH_CONCURRENCY")
        if self.push_deadline_seconds <= 0:
            raise SettingsError("REMIT_PUSH_DEADLINE_SECONDS must be > 0")
        if self.webhook_tls_secret and self.webhook_cert_file:
            raise SettingsError(
                "REMIT_WEBHOOK_TLS_SECRET and REMIT_WEBHOOK_CERT_FILE exclude each other"
            )
        if (self.webhook_cert_file is None) != (self.webhook_key_file is None):
            raise SettingsError("REMIT_WEBHOOK_CERT_FILE and REMIT_WEBHOOK_KEY_FILE go together")
        self.metrics_scraper_peer  # noqa: B018 - raises SettingsError naming the variable
        if self.gateway_native_sidecar not in ("auto", "true", "false"):
            raise SettingsError("REMIT_GATEWAY_NATIVE_SIDECAR: expected auto, true or false")
        if self.webhook_service is not None and self.webhook_service.count("/") != 1:
            raise SettingsError("REMIT_WEBHOOK_SERVICE: expected namespace/name")


__all__ = ["PREFIX", "SYSTEM_NAMESPACES", "Settings"]
