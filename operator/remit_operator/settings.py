"""The operator's settings: one frozen dataclass read from ``REMIT_``-prefixed variables.

The Helm chart sets these; the names are stable API. Every variable is optional:

============================  ===================  ===========================================
Variable                      Default              Meaning
============================  ===================  ===========================================
REMIT_NAMESPACE               remit-system         Namespace the operator runs in.
REMIT_SIGNING_SECRET          remit-signing-key    Secret with the Ed25519 signing key.
REMIT_PUBLIC_KEY_CONFIGMAP    remit-bundle-key     ConfigMap per namespace with public.jwk.
REMIT_GATEWAY_IMAGE           ghcr.io/remit-dev/…  Sidecar image.
REMIT_GATEWAY_CPU_REQUEST     50m                  Sidecar CPU request.
REMIT_GATEWAY_MEMORY_REQUEST  64Mi                 Sidecar memory request.
REMIT_GATEWAY_MEMORY_LIMIT    256Mi                Sidecar memory limit.
REMIT_GATEWAY_NATIVE_SIDECAR  auto                 true, false or auto (native on k8s >= 1.29).
REMIT_GATEWAY_IMAGE_PULL_SECRETS (none)            Comma-separated Secrets added to pods.
REMIT_WEBHOOK_HOST            0.0.0.0              Address the admission webhook listens on.
REMIT_WEBHOOK_PORT            9443                 Its HTTPS port.
REMIT_WEBHOOK_CERT_FILE       (none)               Serving certificate; self-signed if unset.
REMIT_WEBHOOK_KEY_FILE        (none)               Its private key.
REMIT_WEBHOOK_SERVICE         (none)               namespace/name of the webhook Service.
REMIT_WEBHOOK_TLS_SECRET      (none)               Secret the operator keeps its serving
                                                   certificate in (made when missing).
REMIT_WEBHOOK_CONFIGURATION   (none)               MutatingWebhookConfiguration whose
                                                   caBundle the operator keeps current.
REMIT_PUSH_TIMEOUT_SECONDS    2                    Timeout of one push or status call.
REMIT_PUSH_RETRIES            3                    Retries per sidecar after the first try.
REMIT_PUSH_BACKOFF_SECONDS    0.1                  First retry delay; doubles each retry.
REMIT_PUSH_CONCURRENCY        32                   Sidecar requests in flight per MCPServer.
REMIT_PUSH_CONCURRENCY_TOTAL  256                  Sidecar requests in flight overall.
REMIT_PUSH_DEADLINE_SECONDS   10                   Longest push round of one MCPServer.
REMIT_RESYNC_SECONDS          30                   How often every sidecar's digest is read.
REMIT_METRICS_SCRAPER         (none)               NetworkPolicy peer (JSON) let into the
                                                   sidecars' admin port for /metrics.
REMIT_HEALTH_PORT             8080                 kopf liveness endpoint (/healthz).
REMIT_PEERING                 (none)               kopf peering name (leader election).
REMIT_LOG_LEVEL               INFO                 Python log level.
============================  ===================  ===========================================
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from remit_operator.errors import SettingsError

PREFIX = "REMIT_"
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
_LOG_LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the operator can be told; see the module docstring for the variables."""

    namespace: str = "remit-system"
    signing_secret: str = "remit-signing-key"  # noqa: S105 - a Secret's name
    public_key_configmap: str = "remit-bundle-key"
    gateway_image: str = "ghcr.io/remit-dev/remit:latest"
    gateway_cpu_request: str = "50m"
    gateway_memory_request: str = "64Mi"
    gateway_memory_limit: str = "256Mi"
    gateway_native_sidecar: str = "auto"
    gateway_image_pull_secrets: str = ""
    webhook_host: str = "0.0.0.0"  # noqa: S104 - the webhook must be reachable from the apiserver
    webhook_port: int = 9443
    webhook_cert_file: str | None = None
    webhook_key_file: str | None = None
    webhook_service: str | None = None
    webhook_tls_secret: str | None = None
    webhook_configuration: str | None = None
    push_timeout_seconds: float = 2.0
    push_retries: int = 3
    push_backoff_seconds: float = 0.1
    push_concurrency: int = 32
    push_concurrency_total: int = 256
    push_deadline_seconds: float = 10.0
    resync_seconds: float = 30.0
    metrics_scraper: str = ""
    health_port: int = 8080
    metrics_port: int = 9090
    peering: str | None = None
    log_level: str = "INFO"

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
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        defaults = cls()
        for name in cls.__dataclass_fields__:
            raw = env.get(PREFIX + name.upper())
            if raw is None or raw == "":
                continue
            current = getattr(defaults, name)
            values[name] = _convert(PREFIX + name.upper(), raw, current)
        settings = cls(**values)  # type: ignore[arg-type]
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
        if self.push_timeout_seconds <= 0 or self.resync_seconds <= 0:
            raise SettingsError("REMIT_PUSH_TIMEOUT_SECONDS and REMIT_RESYNC_SECONDS must be > 0")
        if self.push_retries < 0 or self.push_backoff_seconds < 0:
            raise SettingsError("REMIT_PUSH_RETRIES and REMIT_PUSH_BACKOFF_SECONDS must be >= 0")
        if self.push_concurrency < 1:
            raise SettingsError("REMIT_PUSH_CONCURRENCY must be >= 1")
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


def _convert(variable: str, raw: str, current: object) -> object:
    try:
        if isinstance(current, bool):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if isinstance(current, int):
            return int(raw)
        if isinstance(current, float):
            return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{variable}: expected a number, got {raw!r}") from exc
    return raw.strip()
