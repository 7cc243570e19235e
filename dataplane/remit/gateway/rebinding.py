"""DNS-rebinding protection: the ``Host`` and ``Origin`` a request may carry.

The MCP Streamable HTTP transport requires servers to validate ``Origin`` (and, for local
servers, to guard against DNS rebinding): a page on ``evil.example`` whose name an attacker
re-points at 127.0.0.1 or a cluster address makes the victim's browser send requests with
``Host: evil.example`` and ``Origin: http://evil.example``. The gateway forwards with the
upstream's own ``Host``, so the MCP server behind it can no longer check; the gateway does.

A ``Host`` is allowed when it is, case-insensitively:

- an IP literal (a rebinding attack needs a name the attacker controls, never an address),
- ``localhost``, a single-label name (``files``) or a Kubernetes service name (``*.svc``,
  ``*.svc.cluster.local``): names no public DNS zone can serve an attacker,
- the host of the MCPServer's audience (the URL its clients are told to use), or
- listed in ``spec.gateway.allowedHosts`` (``name`` for any port, ``name:port``; ``*`` any).

An ``Origin``, when sent, is allowed when its host is allowed by the same rules, or it is listed
in ``spec.gateway.allowedOrigins`` (``*`` any). Anything else is refused before authentication:
``421`` for the Host, ``403`` for the Origin, as the MCP SDK's own servers answer, and recorded
with reason ``host_not_allowed``. A request without ``Host`` (HTTP/1.0) is judged on Origin.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache
from typing import Final
from urllib.parse import urlsplit

from remit.errors import ProtocolError
from remit.policy.bundle import ServerSettings
from remit.policy.decision import Reason

INVALID_REQUEST: Final = -32600
_LOCAL_SUFFIXES: Final = (".svc", ".svc.cluster.local")


def split_host(value: str) -> tuple[str, str] | None:
    """(host, port) of a Host header value (port "" when absent); None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[: end + 1], value[end + 1 :]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        return host, rest[1:]
    host, sep, port = value.partition(":")
    if not host or (sep and not port.isdigit()):
        return None
    return host, port


@lru_cache(maxsize=256)  # every request names its Host: parse each spelling once (bounded)
def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _audience_host(audience: str) -> str | None:
    parts = urlsplit(audience)
    return parts.hostname.lower() if parts.scheme and parts.hostname else None


def host_allowed(host: str, port: str, server: ServerSettings) -> bool:
    """Whether ``host``(:``port``) may be named by a request to this server."""
    if _is_ip(host) or host == "localhost" or "." not in host:
        return True
    if host.endswith(_LOCAL_SUFFIXES) or host == _audience_host(server.audience):
        return True
    return _listed(host, port, server.allowed_hosts)


def _listed(host: str, port: str, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        if pattern == "*":
            return True
        split = split_host(pattern)
        if split is not None and split[0] == host and split[1] in ("", port):
            return True
    return False


def origin_allowed(origin: str, server: ServerSettings) -> bool:
    """Whether a browser page at ``origin`` may call this server."""
    normalised = origin.strip().lower().rstrip("/")
    listed = {o.lower().rstrip("/") for o in server.allowed_origins}
    if "*" in listed or normalised in listed:
        return True
    parts = urlsplit(normalised)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    try:
        port = str(parts.port or "")
    except ValueError:
        return False
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return host_allowed(host, port, server)


def check_host_and_origin(
    host: str | None, origin: str | None, server: ServerSettings
) -> ProtocolError | None:
    """The refusal for a request with a disallowed ``Host`` or ``Origin``; None if allowed."""
    if host is not None:
        split = split_host(host)
        if split is None or not host_allowed(*split, server):
            text = f"Invalid Host header {host[:200]!r}: not an allowed host for this server"
            return ProtocolError(INVALID_REQUEST, text, status=421, reason=Reason.HOST_NOT_ALLOWED)
    if origin is not None and not origin_allowed(origin, server):
        text = f"Invalid Origin header {origin[:200]!r}: not an allowed origin for this server"
        return ProtocolError(INVALID_REQUEST, text, status=403, reason=Reason.HOST_NOT_ALLOWED)
    return None


__all__ = ["check_host_and_origin", "host_allowed", "origin_allowed", "split_host"]
