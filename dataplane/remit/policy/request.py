"""What the engine decides about: who is calling (Identity) and what they ask (Request).

The gateway builds these from a verified token and a parsed JSON-RPC message; the CLI builds
them from flags. They are plain frozen dataclasses so the hot path pays no validation cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Identity:
    """The human a call is made for and the agent making it.

    ``subject`` is the token's ``sub`` and ``issuer`` its ``iss``. ``agent`` is the current
    actor (``act.sub``, else ``azp``, else ``client_id``); ``chain`` lists the earlier actors of
    a nested ``act`` claim, outermost first. Only ``agent`` is authorised; ``chain`` is evidence.
    """

    subject: str
    agent: str
    issuer: str = ""
    groups: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    chain: tuple[str, ...] = ()
    claims: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Request:
    """One MCP request to decide.

    ``method`` is the JSON-RPC method. ``name`` is the tool name (``tools/call``), resource URI
    (``resources/read``) or prompt name (``prompts/get``); empty for other methods.
    ``annotations`` are the tool's MCP annotations as the server declared them (missing hints
    take the MCP specification's defaults when rules match on them). ``now`` is injected so
    decisions are reproducible; ``None`` means the current time.
    """

    identity: Identity
    method: str
    name: str = ""
    arguments: Mapping[str, Any] = field(default_factory=dict)
    annotations: Mapping[str, Any] = field(default_factory=dict)
    now: datetime | None = None
    kind: str | None = None
    """For a method decided against what it references (``completion/complete``): ``prompt``
    or ``resource``, the kind ``name`` is; None when the reference names neither."""
