"""List results show only what the caller could use: tools, resources, templates, prompts.

A ``tools/list`` result is also where the gateway learns tool definitions, so each listed tool
passes tool pinning first (a changed definition is hidden under ``Enforce``), then the policy's
visibility. Anything that is not a list result of a known method passes unchanged.
"""

from __future__ import annotations

from typing import Any

from remit.gateway.pins import PinEnforcer
from remit.gateway.state import Policy
from remit.policy.methods import LISTS
from remit.policy.request import Identity

LIST_KEYS = {
    "tools/list": "tools",
    "resources/list": "resources",
    "resources/templates/list": "resourceTemplates",
    "prompts/list": "prompts",
}
"""The result field holding the items of each list method."""


def filter_list(
    policy: Policy, pins: PinEnforcer, identity: Identity, method: str, response: dict[str, Any]
) -> dict[str, Any]:
    """``response`` to a ``method`` call with its listed items cut to what ``identity`` may use."""
    key = LIST_KEYS.get(method)
    result = response.get("result")
    if key is None or not isinstance(result, dict):
        return response
    items = result.get(key)
    if not isinstance(items, list):
        return response
    items = [i for i in items if isinstance(i, dict)]
    engine = policy.engine
    if method == "tools/list":
        items = pins.filter_listed(items, policy.bundle.server.tool_pinning)
        visible = engine.visible_tools(identity, items)
    elif LISTS[method] == "resource":
        visible = engine.visible_resources(identity, items)
    else:
        visible = engine.visible_prompts(identity, items)
    return {**response, "result": {**result, key: list(visible)}}
