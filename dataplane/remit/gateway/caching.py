"""Results the gateway shapes per caller are marked so no shared cache hands them to another.

2026-07-28 lets a server say how a result may be cached (SEP-2549: ``ttlMs`` and
``cacheScope``, ``public`` meaning shareable across authorization contexts). Behind the gateway
no such result is caller-independent: list results are filtered to what the caller may use,
and a ``resources/read`` result reached this caller only because the policy allowed this
caller. So on the cacheable methods the gateway shapes or decides, the result's ``cacheScope``
becomes ``private`` when the exchange speaks 2026-07-28 (the request's ``_meta`` names it, or
the server already sent cache hints); ``ttlMs`` is left as the server set it. Older revisions
have no such field and are left untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from remit.gateway.protocol import MODERN_VERSIONS, PROTOCOL_VERSION_META

PER_CALLER: Final = frozenset(
    {"tools/list", "resources/list", "resources/templates/list", "prompts/list", "resources/read"}
)
"""Cacheable methods whose results depend on who asked."""
CACHE_SCOPE: Final = "cacheScope"


def mark_private(
    method: str, params: Mapping[str, Any], response: dict[str, Any]
) -> dict[str, Any]:
    """``response`` with ``result.cacheScope`` set to ``private`` where it applies."""
    result = response.get("result")
    if method not in PER_CALLER or not isinstance(result, dict):
        return response
    meta = params.get("_meta")
    version = meta.get(PROTOCOL_VERSION_META) if isinstance(meta, Mapping) else None
    if version not in MODERN_VERSIONS and CACHE_SCOPE not in result and "ttlMs" not in result:
        return response
    if result.get(CACHE_SCOPE) == "private":
        return response
    return {**response, "result": {**result, CACHE_SCOPE: "private"}}


__all__ = ["PER_CALLER", "mark_private"]
