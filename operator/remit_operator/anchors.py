"""Evidence kept outside the pods: chain anchors.

Anchors. At every resync the syncer reads each sidecar's status (``GET /v1/status`` on the
admin port it pushes bundles to), which names the sidecar's audit chain head. The heads are
kept in the namespace's ConfigMap ``remit-anchors`` (one key ``<server>.<pod>`` per sidecar,
value ``{"head", "time", "server"}``), written only when a head moved. Entries of pods that are
gone stay (they are what proves those pods' logs were not cut later), up to ``MAX_ANCHORS`` per
namespace, oldest dropped first. ``remit audit verify --anchors`` reads that ConfigMap; the
sidecar mounts it (optional) so a restarted container's new chain names its last anchored head.

(The per-server argument digest key is not kept here: it is delivered over the admin port,
``auditkeys.py``.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from remit_operator.errors import KubeError, NotFoundError
from remit_operator.kube import CONFLICT, object_path

ANCHORS_CONFIGMAP = "remit-anchors"
MAX_ANCHORS = 2000
_HEAD = re.compile(r"[0-9a-f]{64}")


def anchor_key(server_name: str, pod_name: str) -> str:
    """The ConfigMap key of one sidecar's anchor (a valid key: names are DNS labels)."""
    return f"{server_name}.{pod_name}"


def valid_head(value: Any) -> str | None:
    """A chain head a sidecar reported, if it has the shape of one (else it is ignored)."""
    return value if isinstance(value, str) and _HEAD.fullmatch(value) else None


def merge_anchors(
    current: Mapping[str, str], server: str, heads: Iterable[tuple[str, str]], now: str
) -> dict[str, str] | None:
    """``current`` with the ``(pod, head)`` pairs of ``server`` (``namespace/name``) recorded;
    None when nothing changed. The oldest entries beyond ``MAX_ANCHORS`` are dropped."""
    name = server.rpartition("/")[2]
    merged = dict(current)
    changed = False
    for pod, head in heads:
        key = anchor_key(name, pod.rpartition("/")[2])
        previous = merged.get(key)
        if previous is not None and _head_of(previous) == head:
            continue
        merged[key] = msgspec.json.encode({"head": head, "time": now, "server": server}).decode()
        changed = True
    if not changed:
        return None
    if len(merged) > MAX_ANCHORS:
        by_age = sorted(merged, key=lambda k: _time_of(merged[k]))
        for key in by_age[: len(merged) - MAX_ANCHORS]:
            del merged[key]
    return merged


def _decoded(value: str) -> dict[str, Any]:
    try:
        data = msgspec.json.decode(value)
    except msgspec.DecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _head_of(value: str) -> Any:
    return _decoded(value).get("head")


def _time_of(value: str) -> str:
    return str(_decoded(value).get("time", ""))


def anchors_configmap(namespace: str, data: Mapping[str, str]) -> dict[str, Any]:
    """The ConfigMap holding a namespace's anchors."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": ANCHORS_CONFIGMAP,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "remit"},
        },
        "data": dict(data),
    }


class AnchorKeeper:
    """Writes heads into ``remit-anchors``."""

    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime  # its API client exists once the operator started

    @property
    def kube(self) -> Any:
        return self._runtime.kube

    async def anchor(self, server: str, heads: list[tuple[str, str]], now: str) -> bool:
        """Record the heads of ``server``'s sidecars; True if the ConfigMap was written.

        The ConfigMap is shared by every server of the namespace, so the write is a merge patch
        of only the keys this call adds, changes or prunes: a key another writer added since
        the read is never dropped (a full read-merge-replace would lose it until its resync).
        """
        if not heads:
            return False
        namespace = server.partition("/")[0]
        collection = object_path("v1", "configmaps", namespace)
        path = f"{collection}/{ANCHORS_CONFIGMAP}"
        for _ in range(2):  # a second pass only after losing a create race
            try:
                current = await self.kube.get(path)
            except NotFoundError:
                merged = merge_anchors({}, server, heads, now)
                if merged is None:
                    return False
                try:
                    await self.kube.create(collection, anchors_configmap(namespace, merged))
                    return True
                except KubeError as exc:
                    if exc.status != CONFLICT:
                        raise
                    continue  # created meanwhile: read it and patch
            data = current.get("data") or {}
            merged = merge_anchors(data, server, heads, now)
            if merged is None:
                return False
            await self.kube.patch(path, {"data": anchor_changes(data, merged)})
            return True
        return False


def anchor_changes(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, str | None]:
    """The merge patch turning ``before`` into ``after`` for the keys either names."""
    changes: dict[str, str | None] = {k: v for k, v in after.items() if before.get(k) != v}
    changes.update({k: None for k in before if k not in after})
    return changes


__all__ = [
    "ANCHORS_CONFIGMAP",
    "AnchorKeeper",
    "anchor_changes",
    "anchor_key",
    "anchors_configmap",
    "merge_anchors",
    "valid_head",
]
