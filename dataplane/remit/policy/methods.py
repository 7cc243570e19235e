"""Which MCP methods are decided how: a table, and deny for anything not in it.

``completion/complete`` is decided against what it completes (``params.ref``: a prompt by
name or a resource template by URI) with the rules of ``prompts/get`` / ``resources/read``;
the gateway names the kind on the ``Request`` (``REFERENCE_KINDS``).
"""

from __future__ import annotations

from typing import Literal

from remit.policy.bundle import TargetKind

MethodClass = Literal["lifecycle", "list", "decided", "unknown"]

LIFECYCLE = frozenset(
    {"initialize", "ping", "server/discover", "logging/setLevel", "subscriptions/listen"}
)
"""Allowed to authenticated callers; what a server sends on them is judged per message
(``subscriptions/listen`` carries only notifications, each filtered for the caller)."""
LISTS: dict[str, TargetKind] = {
    "tools/list": "tool",
    "resources/list": "resource",
    "resources/templates/list": "resource",
    "prompts/list": "prompt",
}
DECIDED: dict[str, TargetKind] = {
    "tools/call": "tool",
    "resources/read": "resource",
    "resources/subscribe": "resource",
    "resources/unsubscribe": "resource",
    "prompts/get": "prompt",
}

REFERENCING: frozenset[str] = frozenset({"completion/complete"})
"""Methods decided against the prompt or resource their ``params.ref`` names."""
REFERENCE_KINDS: dict[str, tuple[TargetKind, str]] = {
    "ref/prompt": ("prompt", "name"),
    "ref/resource": ("resource", "uri"),
}
"""``params.ref.type`` → the kind of target and the ``ref`` key that names it."""


def classify(method: str) -> MethodClass:
    """How ``method`` is decided: lifecycle (allowed), list (filtered), decided, or unknown."""
    if method in DECIDED or method in REFERENCING:
        return "decided"
    if method in LISTS:
        return "list"
    if method in LIFECYCLE or method.startswith("notifications/"):
        return "lifecycle"
    return "unknown"
