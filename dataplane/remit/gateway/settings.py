"""The gateway's settings: one frozen dataclass, from CLI flags or ``REMIT_`` environment.

Sidecar mode (in a cluster) reads the environment the operator's injection sets:

    REMIT_SERVER            namespace/name of the MCPServer (for records before a bundle)
    REMIT_LISTEN            host:port for MCP clients (default 0.0.0.0:9000)
    REMIT_ADMIN_LISTEN      host:port of the admin API (default 0.0.0.0:9901)
    REMIT_UPSTREAM          the MCP server URL on loopback (default http://127.0.0.1:8080/mcp)
    REMIT_BUNDLE_PUBLIC_KEY path of the Ed25519 public key (JWK or PEM) that bundles verify with
    REMIT_POD_NAME          this pod (recorded in every decision record)
    REMIT_AUDIT_SINK        stdout (default) or file
    REMIT_AUDIT_FILE        path, for the file sink
    REMIT_AUDIT_FSYNC       true (default) / false
    REMIT_AUDIT_RESUME_BROKEN  true to start a new chain after a damaged file tail
    REMIT_AUDIT_TIMEOUT     seconds a record may take to be written before calls are denied and
                            the sink reported stalled (default 5)
    REMIT_AUDIT_QUEUE_BYTES records waiting to be written beyond which calls are denied
                            (default 16777216)
    REMIT_MAX_BODY_BYTES    largest accepted request body (default 4194304)
    REMIT_ASGI_SERVER       uvicorn (default, measured faster here) or granian
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from remit.audit.sinks import AuditSettings
from remit.audit.writer import DEFAULT_QUEUE_BYTES
from remit.errors import RemitError, SettingsError


@dataclass(frozen=True, slots=True)
class Address:
    """A host and port to listen on."""

    host: str
    port: int

    @classmethod
    def parse(cls, value: str, setting: str) -> Address:
        """Parse ``host:port`` (``[::1]:9000`` for IPv6)."""
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"{setting}: expected host:port, got {value!r}")
        return cls(host.strip("[]") or "0.0.0.0", int(port))  # noqa: S104 - a sidecar listens on the pod IP


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Everything one gateway process needs; nothing is read from globals."""

    upstream: str = "http://127.0.0.1:8080/mcp"
    listen: Address = Address("0.0.0.0", 9000)  # noqa: S104
    admin_listen: Address = Address("0.0.0.0", 9901)  # noqa: S104
    server: str = ""
    pod: str = ""
    public_key: Path | None = None
    policy_dirs: tuple[Path, ...] = ()
    audit: AuditSettings = field(default_factory=AuditSettings)
    max_body_bytes: int = 4 * 1024 * 1024
    asgi_server: Literal["granian", "uvicorn"] = "uvicorn"

    @property
    def mcp_path(self) -> str:
        """The MCP endpoint path clients use: the upstream's path."""
        return urlsplit(self.upstream).path or "/mcp"


def _flag(value: str, setting: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{setting}: expected true or false, got {value!r}")


def from_environment(env: Mapping[str, str] | None = None) -> GatewaySettings:
    """Sidecar settings from ``REMIT_*`` variables (see the module docstring)."""
    env = os.environ if env is None else env
    get = env.get
    sink_name = get("REMIT_AUDIT_SINK", "stdout")
    if sink_name not in ("stdout", "file"):
        raise SettingsError(f"REMIT_AUDIT_SINK: expected stdout or file, got {sink_name!r}")
    sink: Literal["stdout", "file"] = "file" if sink_name == "file" else "stdout"
    audit_file = get("REMIT_AUDIT_FILE")
    timeout = get("REMIT_AUDIT_TIMEOUT", "5")
    try:
        timeout_seconds = float(timeout)
    except ValueError:
        raise SettingsError(f"REMIT_AUDIT_TIMEOUT: expected seconds, got {timeout!r}") from None
    queue = get("REMIT_AUDIT_QUEUE_BYTES", str(DEFAULT_QUEUE_BYTES))
    if not queue.isdigit():
        raise SettingsError(f"REMIT_AUDIT_QUEUE_BYTES: expected a number, got {queue!r}")
    try:
        audit = AuditSettings(
            sink=sink,
            path=Path(audit_file) if audit_file else None,
            fsync=_flag(get("REMIT_AUDIT_FSYNC", "true"), "REMIT_AUDIT_FSYNC"),
            resume_broken=_flag(
                get("REMIT_AUDIT_RESUME_BROKEN", "false"), "REMIT_AUDIT_RESUME_BROKEN"
            ),
            timeout=timeout_seconds,
            max_queue_bytes=int(queue),
        )
    except RemitError as exc:
        raise SettingsError(f"REMIT_AUDIT_*: {exc}") from exc
    server_name = get("REMIT_ASGI_SERVER", "uvicorn")
    if server_name not in ("granian", "uvicorn"):
        raise SettingsError(f"REMIT_ASGI_SERVER: expected granian or uvicorn, got {server_name!r}")
    server: Literal["granian", "uvicorn"] = "granian" if server_name == "granian" else "uvicorn"
    body = get("REMIT_MAX_BODY_BYTES", str(4 * 1024 * 1024))
    if not body.isdigit():
        raise SettingsError(f"REMIT_MAX_BODY_BYTES: expected a number, got {body!r}")
    key = get("REMIT_BUNDLE_PUBLIC_KEY")
    return GatewaySettings(
        upstream=get("REMIT_UPSTREAM", "http://127.0.0.1:8080/mcp"),
        listen=Address.parse(get("REMIT_LISTEN", "0.0.0.0:9000"), "REMIT_LISTEN"),
        admin_listen=Address.parse(get("REMIT_ADMIN_LISTEN", "0.0.0.0:9901"), "REMIT_ADMIN_LISTEN"),
        server=get("REMIT_SERVER", ""),
        pod=get("REMIT_POD_NAME") or socket.gethostname(),
        public_key=Path(key) if key else None,
        audit=audit,
        max_body_bytes=int(body),
        asgi_server=server,
    )
