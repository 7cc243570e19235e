"""Bring the operator's index up to date before a replica that stood by leads again.

kopf pauses a replica's watches while another replica leads. When it resumes, kopf lists every
kind again, but that listing reports no deletions: a ConsentGrant deleted (revoked) or an
AgentPolicy removed meanwhile would stay in this replica's index and return in the bundles it
pushes. So before leading again, the operator lists every kind itself and forgets what the
listing no longer has (``Index.prune``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from remit.api.common import API_VERSION
from remit_operator.errors import KubeError
from remit_operator.index import Index, ref
from remit_operator.kube import KubeClient, object_path


async def _listing(kube: KubeClient, plural: str, page_size: int) -> tuple[set[str], int]:
    """Every ``namespace/name`` of ``plural`` cluster-wide, and the listing's resourceVersion."""
    collection = object_path(API_VERSION, plural)
    listed: set[str] = set()
    cursor = ""
    while True:
        query = f"?limit={page_size}" + (f"&continue={quote(cursor, safe='')}" if cursor else "")
        page = await kube.request("GET", collection + query)
        for item in page.get("items") or []:
            if not isinstance(item, dict):
                continue
            meta: Mapping[str, Any] = item.get("metadata") or {}
            listed.add(ref(meta.get("namespace"), str(meta.get("name"))))
        metadata: Mapping[str, Any] = page.get("metadata") or {}
        cursor = str(metadata.get("continue") or "")
        if not cursor:
            break
    try:
        return listed, int(metadata.get("resourceVersion") or 0)
    except ValueError as exc:
        raise KubeError(200, f"listing {plural}: resourceVersion is not a number") from exc


async def refresh_index(
    kube: KubeClient, index: Index, plurals: Mapping[str, str], page_size: int
) -> set[str]:
    """List every kind (``kind → plural``) afresh and forget what the listing no longer has;
    return the servers affected. Raises ``RemitError`` when a listing fails."""
    affected: set[str] = set()
    for kind, plural in plurals.items():
        listed, listed_at = await _listing(kube, plural, page_size)
        affected |= index.prune(kind, listed, listed_at)
    return affected
