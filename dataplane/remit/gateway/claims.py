"""Which groups a caller is in, read from the places the identity provider puts them.

Providers disagree on the shape: Okta, Dex and Entra ID put a top-level ``groups`` list in the
token, Keycloak puts realm roles in ``realm_access.roles`` and client roles in
``resource_access.<client>.roles``, Entra app roles arrive in ``roles``, Auth0 uses namespaced
claims such as ``https://example.com/roles``. The MCPServer's ``authentication.groupClaims``
lists the places (``remit.api.claimpath`` paths) and an optional prefix per place; the names
found are merged, in order and without duplicates, into ``subject.groups``.

A value that is not a list is ignored (a single string is ambiguous: one name, or several
separated by spaces?), as are non-string and empty list items. A token carrying more than
``MAX_GROUPS`` names is refused rather than cut short: policies may deny by group, so
silently dropping one could let a call through that a complete list would have stopped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from remit.api.claimpath import parse_claim_path
from remit.errors import AuthenticationError
from remit.policy.bundle import GroupClaim

MAX_GROUPS = 1024


@dataclass(frozen=True, slots=True)
class GroupSource:
    """One parsed ``groupClaims`` entry: the member names to follow and the prefix to add."""

    path: tuple[str, ...]
    prefix: str = ""


DEFAULT_GROUP_SOURCES = (GroupSource(("groups",)),)


def group_sources(entries: Iterable[GroupClaim]) -> tuple[GroupSource, ...]:
    """Parse a bundle's ``groupClaims`` (validated when the MCPServer was loaded)."""
    return tuple(GroupSource(parse_claim_path(e.claim), e.prefix) for e in entries)


def _lookup(claims: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = claims
    for name in path:
        if not isinstance(value, dict):
            return None
        value = value.get(name)
    return value


def groups_from(claims: Mapping[str, Any], sources: Iterable[GroupSource]) -> tuple[str, ...]:
    """The caller's groups: names from every source, prefixed, merged in order, deduplicated.

    Raises ``AuthenticationError`` when the token names more than ``MAX_GROUPS`` groups.
    """
    found: dict[str, None] = {}
    for source in sources:
        value = _lookup(claims, source.path)
        names = value if isinstance(value, list) else ()
        for name in names:
            if isinstance(name, str) and name:
                found[source.prefix + name] = None
                if len(found) > MAX_GROUPS:
                    raise AuthenticationError(
                        "invalid_token", f"the token names more than {MAX_GROUPS} groups"
                    )
    return tuple(found)
