"""Request header fields the gateway's decisions rest on: each must appear once, spelled one way.

The gateway reads the caller's token, session, protocol version and routing headers from the
first field of each name; if the same field came twice, the upstream server (or a framework in
front of it) might read the other one, e.g. check one ``Mcp-Session-Id`` and forward both, or
authenticate one ``Authorization`` while the server trusts the second. Some frameworks also
read ``Mcp_Session_Id`` as ``Mcp-Session-Id`` (CGI-style environments map both to
``HTTP_MCP_SESSION_ID``). So a request that carries an identity-bearing field more than once,
or spells one with ``_``, is refused with 400 before anything is authenticated or forwarded.

``remit_field`` names the fields only the gateway may send upstream (``X-Remit-*``, in any case,
with ``-`` or ``_``): a client's copies are dropped, never forwarded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Final

from remit.errors import ProtocolError
from remit.gateway.protocol import INVALID_REQUEST
from remit.policy.decision import Reason

IDENTITY_FIELDS: Final = frozenset(
    {
        "authorization",
        "host",
        "content-type",
        "content-length",
        "mcp-session-id",
        "mcp-protocol-version",
        "mcp-method",
        "mcp-name",
        "last-event-id",
    }
)
"""Fields that say who is calling, in which session, or what is called."""
PARAM_PREFIX: Final = "mcp-param-"
REMIT_PREFIX: Final = "x-remit-"


def canonical(name: str) -> str:
    """The field name as the gateway compares it: lowercase, ``_`` read as ``-``."""
    return name.lower().replace("_", "-")


def identity_bearing(name: str) -> bool:
    """Whether ``name`` (canonical) is a field the gateway's decisions rest on."""
    return name in IDENTITY_FIELDS or name.startswith(PARAM_PREFIX)


def remit_field(name: str) -> bool:
    """Whether ``name`` (canonical: every spelling of a field reads the same) is one of the
    gateway's own ``X-Remit-*`` fields."""
    return name.startswith(REMIT_PREFIX)


def check_header_fields(headers: Sequence[tuple[str, str]]) -> None:
    """Refuse (400, ``duplicate_header``) identity-bearing fields sent twice or with ``_``."""
    seen: set[str] = set()
    repeated: list[str] = []
    for name, _ in headers:
        wanted = name.lower()
        if "_" in wanted:
            wanted = wanted.replace("_", "-")
            if identity_bearing(wanted):
                raise _refused(f"header {name!r} must be spelled {_display(wanted)!r}")
            continue
        if wanted not in IDENTITY_FIELDS and not wanted.startswith(PARAM_PREFIX):
            continue
        if wanted in seen:
            repeated.append(wanted)
        seen.add(wanted)
    if repeated:  # in the order first seen, as a count of each
        counts = Counter(canonical(name) for name, _ in headers if canonical(name) in repeated)
        for name, count in counts.items():
            if count > 1:
                raise _refused(f"header {_display(name)} appears {count} times; send it once")


def _display(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


def _refused(text: str) -> ProtocolError:
    return ProtocolError(
        INVALID_REQUEST, f"Invalid Request: {text}", reason=Reason.DUPLICATE_HEADER
    )


__all__ = [
    "IDENTITY_FIELDS",
    "canonical",
    "check_header_fields",
    "identity_bearing",
    "remit_field",
]
