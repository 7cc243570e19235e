"""The consent service's settings, from ``REMIT_CONSENT_*`` variables (``remit consent``).

The consent page must know its own public URL (the OIDC redirect URI and the ``Secure``
cookies hang on it), the issuer its humans log in at and its client there, the key it shares
with the gateways to open consent requests, and where ConsentGrants go: the Kubernetes API
(in a cluster) or a policy directory (standalone).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from remit.errors import SettingsError
from remit.settings import setting


def _subjects(raw: str, variable: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _listen(raw: str, variable: str) -> str:
    host, _, port = raw.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"{variable}: expected host:port, got {raw!r}")
    return raw


@dataclass(frozen=True, slots=True)
class ConsentSettings:
    """Everything one consent service needs."""

    public_url: str = setting(
        "",
        env="CONSENT_PUBLIC_URL",
        doc="The consent page's public base URL (https), as gateways link to it.",
    )
    listen: str = setting(
        "0.0.0.0:8080",
        env="CONSENT_LISTEN",
        doc="`host:port` the consent service listens on.",
        parse=_listen,
    )
    issuer: str = setting(
        "",
        env="CONSENT_ISSUER",
        doc="The OpenID Provider humans log in at (the MCPServer's issuer).",
    )
    client_id: str = setting(
        "remit-consent",
        env="CONSENT_CLIENT_ID",
        doc="The consent service's OIDC client id at the issuer.",
    )
    client_secret_file: Path | None = setting(
        None,
        env="CONSENT_CLIENT_SECRET_FILE",
        doc="File holding the client secret (omit for a public client: PKCE only).",
    )
    key_file: Path | None = setting(
        None,
        env="CONSENT_KEY_FILE",
        doc="The 32-byte key consent requests are sealed with (shared with the gateways).",
    )
    previous_key_file: Path | None = setting(
        None,
        env="CONSENT_PREVIOUS_KEY_FILE",
        doc="The key(s) links were sealed with before a rotation (base64, separated by "
        "whitespace or commas); an absent file means none. Re-read when a link names an "
        "unknown key.",
    )
    session_key_file: Path | None = setting(
        None,
        env="CONSENT_SESSION_KEY_FILE",
        doc="Key signing the session cookie (omit: a new one per start, logging everyone out).",
    )
    store: Literal["kubernetes", "directory"] = setting(
        "kubernetes",
        env="CONSENT_STORE",
        doc="Where grants are written: `kubernetes` (its ServiceAccount) or `directory`.",
    )
    directory: Path | None = setting(
        None,
        env="CONSENT_DIRECTORY",
        doc="The policy directory grants are written into (`directory` store).",
    )
    admins: tuple[str, ...] = setting(
        (),
        env="CONSENT_ADMINS",
        doc="Comma-separated `sub` values allowed on the access review page.",
        parse=_subjects,
        shown="none",
    )
    insecure_cookies: bool = setting(
        False,
        env="CONSENT_INSECURE_COOKIES",
        doc="Send cookies without `Secure` (only for plain-http development; never in production).",
    )
    # Set in-process (standalone): the gateway's own key, and its audit chain.
    key: bytes | None = None

    @property
    def redirect_uri(self) -> str:
        """Where the issuer sends the human back after login."""
        return self.public_url.rstrip("/") + "/callback"


__all__ = ["ConsentSettings"]
