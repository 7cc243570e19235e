"""How a client learns to authenticate: RFC 9728 metadata and the ``WWW-Authenticate`` header.

The MCP authorization specification has a client that gets a 401 read ``resource_metadata``
from ``WWW-Authenticate``, fetch the protected-resource metadata document there, and find the
authorization server in it. This module builds both pieces from ``AuthSettings``; the gateway
serves the document and sets the header, and chooses the status with ``status_for``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from remit.errors import AuthenticationError, InsufficientScopeError, MissingCredentialsError
from remit.gateway.authn import AuthSettings

WELL_KNOWN = "/.well-known/oauth-protected-resource"
_MAX_DESCRIPTION = 300


def build_metadata(
    settings: AuthSettings,
    *,
    resource_name: str | None = None,
    scopes_supported: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The RFC 9728 §2 protected-resource metadata document for the server in ``settings``.

    ``resource`` is the audience (RFC 8707 resource identifier); ``scopes_supported`` defaults
    to the required scopes.
    """
    scopes = list(settings.required_scopes if scopes_supported is None else scopes_supported)
    document: dict[str, Any] = {
        "resource": settings.audience,
        "authorization_servers": [settings.issuer],
        "scopes_supported": scopes,
        "bearer_methods_supported": ["header"],
    }
    if resource_name:
        document["resource_name"] = resource_name
    return document


def metadata_paths(resource: str) -> tuple[str, ...]:
    """The HTTP paths the metadata document is served on for ``resource``.

    RFC 9728 §3.1 inserts the well-known segment between host and the resource's path
    (``https://h/mcp`` → ``/.well-known/oauth-protected-resource/mcp``); MCP clients fall back
    to the root form, so a resource with a path is served on both, path-suffixed first.
    """
    path = urlsplit(resource).path.rstrip("/")
    return (WELL_KNOWN + path, WELL_KNOWN) if path else (WELL_KNOWN,)


def metadata_url(resource: str) -> str:
    """The RFC 9728 §3.1 metadata URL for ``resource``, as sent in ``resource_metadata``."""
    parts = urlsplit(resource)
    return f"{parts.scheme}://{parts.netloc}{metadata_paths(resource)[0]}"


def status_for(error: AuthenticationError | None) -> int:
    """The HTTP status for a refusal (RFC 6750 §3.1): 400, 401 or 403."""
    if isinstance(error, InsufficientScopeError):
        return 403
    if error is None or isinstance(error, MissingCredentialsError):
        return 401
    return 400 if error.reason == "invalid_request" else 401


def www_authenticate(
    error: AuthenticationError | None,
    resource_metadata_url: str,
    required_scopes: Iterable[str] = (),
) -> str:
    """The ``WWW-Authenticate`` value for a 401/403 under the MCP authorization spec.

    Always ``Bearer resource_metadata="…"``. An error adds ``error`` and ``error_description``
    unless no credentials were sent at all (``None`` or ``MissingCredentialsError``, RFC 6750
    §3.1). ``scope`` lists the required scopes for ``insufficient_scope`` and, as guidance, on
    the first 401. Values are sanitised to printable ASCII and quote-escaped.
    """
    params = [("resource_metadata", resource_metadata_url)]
    anonymous = error is None or isinstance(error, MissingCredentialsError)
    if error is not None and not anonymous:
        params.append(("error", error.reason))
        params.append(("error_description", error.description[:_MAX_DESCRIPTION]))
    scopes = " ".join(required_scopes)
    if scopes and (anonymous or isinstance(error, InsufficientScopeError)):
        params.append(("scope", scopes))
    return "Bearer " + ", ".join(f"{name}={_quote(value)}" for name, value in params)


def _quote(value: str) -> str:
    """An RFC 9110 quoted-string: printable ASCII only (no header injection), escaped."""
    printable = "".join(c if " " <= c <= "~" else "?" for c in value)
    return '"' + printable.replace("\\", "\\\\").replace('"', '\\"') + '"'
