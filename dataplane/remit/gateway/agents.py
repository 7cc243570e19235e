"""Which agent is calling, read from where the identity provider puts it.

RFC 8693 delegation puts the acting agent in ``act.sub`` (and earlier actors in nested
``act`` objects); that claim, when present, always names the agent. Most providers do not issue
``act`` for an ordinary token and name the client that obtained it instead, each in its own
claim: ``azp`` (OpenID Connect, Keycloak, Dex, Entra ID v2.0), ``client_id`` (RFC 9068),
``cid`` (Okta), ``appid`` (Entra ID v1.0). The MCPServer's ``authentication.agentClaims`` lists
the claims to consult (``remit.api.claimpath`` paths), default ``[azp, client_id]``.

Precedence, failing closed on anything unclear:

1. ``act`` present: it must be an object with a non-empty string ``sub`` (each nested ``act``
   too); ``act.sub`` is the agent and ``agentClaims`` are not read.
2. Otherwise every listed claim present in the token is read. Each must be a non-empty
   string, and all of them must name the same client: a token whose ``azp`` and ``cid`` name
   different clients is refused rather than resolved by list order, since a policy cannot
   tell which of the two acted.
3. No listed claim present: the token is refused (every decision names an agent).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from remit.api.claimpath import parse_claim_path
from remit.errors import AuthenticationError

MAX_ACT_DEPTH = 32
DEFAULT_AGENT_CLAIMS = ("azp", "client_id")


@dataclass(frozen=True, slots=True)
class AgentSource:
    """One parsed ``agentClaims`` entry: as written (for messages) and the names to follow."""

    claim: str
    path: tuple[str, ...]


def agent_sources(entries: Iterable[str]) -> tuple[AgentSource, ...]:
    """Parse a bundle's ``agentClaims`` (validated when the MCPServer was loaded)."""
    return tuple(AgentSource(entry, parse_claim_path(entry)) for entry in entries)


DEFAULT_AGENT_SOURCES = agent_sources(DEFAULT_AGENT_CLAIMS)

_MISSING = object()


def _lookup(claims: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = claims
    for name in path:
        if not isinstance(value, dict) or name not in value:
            return _MISSING
        value = value[name]
    return value


def _listed(sources: tuple[AgentSource, ...]) -> str:
    return ", ".join(repr(s.claim) for s in sources) if sources else "none"


def _from_sources(claims: Mapping[str, Any], sources: tuple[AgentSource, ...]) -> str:
    found: dict[str, str] = {}
    for source in sources:
        value = _lookup(claims, source.path)
        if value is _MISSING or value is None:
            continue
        if not isinstance(value, str) or not value:
            raise AuthenticationError(
                "invalid_token", f"the agent claim {source.claim!r} must be a non-empty string"
            )
        found[source.claim] = value
    if not found:
        raise AuthenticationError(
            "invalid_token",
            "no agent identity: the token has no 'act' claim and none of the agent claims "
            f"this server reads ({_listed(sources)})",
        )
    if len(set(found.values())) > 1:
        named = ", ".join(f"{claim}={value[:64]!r}" for claim, value in found.items())
        raise AuthenticationError(
            "invalid_token", f"ambiguous agent identity: the agent claims disagree ({named})"
        )
    return next(iter(found.values()))


def actors(
    claims: Mapping[str, Any], sources: tuple[AgentSource, ...] = DEFAULT_AGENT_SOURCES
) -> tuple[str, tuple[str, ...]]:
    """The current agent and the earlier actors of the delegation chain.

    With ``act`` the chain lists the nested actors below the current one in nesting order:
    ``act.act.sub`` first (the actor that delegated to the current agent), then
    ``act.act.act.sub``, and so on, so the last entry is the earliest actor. Without ``act`` the
    agent comes from ``sources`` (see the module docstring) and the chain is empty.
    """
    act = claims.get("act")
    if act is None:
        return _from_sources(claims, sources), ()
    found: list[str] = []
    while act is not None:
        if not isinstance(act, dict) or not isinstance(act.get("sub"), str) or not act["sub"]:
            raise AuthenticationError(
                "invalid_token", "the 'act' claim must be an object with a string 'sub'"
            )
        found.append(act["sub"])
        if len(found) > MAX_ACT_DEPTH:
            raise AuthenticationError("invalid_token", "the 'act' delegation chain is too deep")
        act = act.get("act")
    return found[0], tuple(found[1:])
