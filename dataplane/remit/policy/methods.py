"""Which MCP methods are decided how: a table, and deny for anything not in it."""

from __future__ import annotations

from typing import Literal

from remit.policy.bundle import TargetKind

MethodClass = Literal["lifecycle", "list", "decided", "unknown"]

LIFECYCLE = frozenset({"initialize", "ping", "server/discover", "logging/setLevel"})
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


def classify(method: str) -> MethodClass:
    """How ``method`` is decided: lifecycle (allowed), list (filtered), decided, or unknown."""
    if method in DECIDED:
        return "decided"
    if method in LISTS:
        return "list"
    if method in LIFECYCLE or method.startswith("notifications/"):
        return "lifecycle"
    return "unknown"
