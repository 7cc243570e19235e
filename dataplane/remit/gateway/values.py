"""How the gateway's ``REMIT_*`` variables become values: addresses, sizes, counts, seconds.

Each parser takes the variable's text and its name, and raises ``SettingsError`` naming the
variable when the text is not a value of its kind; ``remit.gateway.settings`` names one per
field (``setting(..., parse=...)``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from remit.errors import SettingsError

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_SERVER_REF = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?")


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


def address(raw: str, variable: str) -> Address:
    """``host:port`` (``[::1]:9000`` for IPv6)."""
    return Address.parse(raw.strip(), variable)


def size(raw: str, variable: str) -> int:
    """A number of bytes (0 or more)."""
    if not raw.strip().isdigit():
        raise SettingsError(f"{variable}: expected a number, got {raw!r}")
    return int(raw)


def seconds(raw: str, variable: str) -> float:
    """A number of seconds."""
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{variable}: expected seconds, got {raw!r}") from None


def positive(raw: str, variable: str) -> int:
    """A whole number of at least 1."""
    if not raw.strip().isdigit() or int(raw) < 1:
        raise SettingsError(f"{variable}: expected a whole number of at least 1, got {raw!r}")
    return int(raw)


def interval(raw: str, variable: str) -> float:
    """A finite number of seconds, 0 or more."""
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):  # negative, infinite or NaN
        raise SettingsError(f"{variable}: expected a number of seconds, got {raw!r}")
    return seconds


def server_ref(raw: str, variable: str) -> str:
    """An MCPServer reference, ``namespace/name`` (Kubernetes name syntax)."""
    if not _SERVER_REF.fullmatch(raw.strip()):
        raise SettingsError(f"{variable}: expected namespace/name, got {raw!r}")
    return raw.strip()


def count(raw: str, variable: str) -> int:
    """A whole number above 0."""
    if not raw.strip().isdigit() or int(raw) < 1:
        raise SettingsError(f"{variable}: expected a whole number above 0, got {raw!r}")
    return int(raw)


def positive_seconds(raw: str, variable: str) -> float:
    """A finite number of seconds above 0."""
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise SettingsError(f"{variable}: expected a number of seconds above 0, got {raw!r}")
    return value


def log_level(raw: str, variable: str) -> str:
    """A Python log level name (any case), upper-cased."""
    level = raw.strip().upper()
    if level not in _LOG_LEVELS:
        raise SettingsError(f"{variable}: expected one of {', '.join(_LOG_LEVELS)}, got {raw!r}")
    return level
