"""The previous release's injection seal (v1), for verification only, while pods it injected run.

The v1 webhook (up to commit cd3fc64) sealed the gateway container and, of its volumes, only the
name of the public-key ConfigMap; it also mounted the per-namespace Secret ``remit-audit-key``
(item ``<server name>`` as ``key``: the argument digest key) and the optional ConfigMap
``remit-anchors``, whose sources a pod author could change without breaking the seal. So a v1
seal alone proves too little, and refusing it proves too much: the operator would stop
pushing to every running sidecar (revocations and policy changes not applied) until each
workload is restarted. A pod sealed by v1 therefore counts as a sidecar (``trust.py``) when

- its v1 seal verifies over the container it runs (``container_digest_v1``: the fields
  ``container_identity_v1`` covers, then the key volume as v1 digested it),
- the API server created it before ``REMIT_V1_SEALS_BEFORE`` (``trust.py``), and
- every volume the gateway mounts has exactly the source v1 injected (``volumes_as_injected``),
  compared as the v2 digest compares sources: without the ``defaultMode`` the API server fills
  in. The key volume must name the ConfigMap this operator publishes
  (``REMIT_PUBLIC_KEY_CONFIGMAP``), whatever v1 sealed.

Anything else (another ConfigMap, another Secret or item, another kind of volume, one more
field, a mount without its volume) is untrusted, as a pod without a seal. The webhook never
writes a v1 seal (pods created after the upgrade get v3, and it refuses a CREATE carrying a
v1 seal), and a v1 seal counts only on a pod created before ``REMIT_V1_SEALS_BEFORE``.
``REMIT_ACCEPT_V1_SEALS=false`` ends the acceptance once every governed pod has been
re-created; a later release removes it. Their argument digests are keyed with the
per-namespace Secret, not derivable from the operator's root key: investigators need it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from remit_operator.seal import KEY_VOLUME, digest_of, mounted_volumes

V1_CONTEXT = b"remit.dev injection seal v1\0"
AUDIT_KEY_VOLUME = "remit-audit-key"  # v1 mounted the digest key from this Secret
AUDIT_KEY_SECRET = "remit-audit-key"  # noqa: S105 - the Secret's name, not a secret
ANCHORS_VOLUME = "remit-anchors"
ANCHORS_CONFIGMAP = "remit-anchors"

Sources = tuple[tuple[str, str], ...]  # (volume name, its source as canonical JSON)


def _key_volume(spec: Mapping[str, Any]) -> list[Any]:
    """The key volume as v1 digested it: the ConfigMap's name and the volume's other keys."""
    for volume in spec.get("volumes") or []:
        if isinstance(volume, Mapping) and volume.get("name") == KEY_VOLUME:
            config_map = volume.get("configMap") or {}
            other = sorted(k for k in volume if k not in ("name", "configMap"))
            return [config_map.get("name"), other]
    return [None, []]


def _env(entry: Mapping[str, Any]) -> list[Any]:
    source = entry.get("valueFrom") or {}
    field = (source.get("fieldRef") or {}).get("fieldPath") if isinstance(source, Mapping) else None
    return [entry.get("name"), entry.get("value"), field, sorted(source) if source else None]


def container_identity_v1(container: Mapping[str, Any]) -> list[Any]:
    """The container fields a v1 (and the unreleased v2) seal covered, in their order."""
    return [
        container.get("name"),
        container.get("image"),
        container.get("command"),
        container.get("args"),
        [_env(e) for e in container.get("env") or [] if isinstance(e, Mapping)],
        container.get("envFrom"),
        [
            [m.get("name"), m.get("mountPath"), bool(m.get("readOnly")), m.get("subPath")]
            for m in container.get("volumeMounts") or []
            if isinstance(m, Mapping)
        ],
        container.get("securityContext"),
        container.get("restartPolicy"),
        [
            [p.get("name"), p.get("containerPort")]
            for p in container.get("ports") or []
            if isinstance(p, Mapping)
        ],
    ]


def container_digest_v1(container: Mapping[str, Any], spec: Mapping[str, Any]) -> str:
    """The digest a v1 seal covers: the gateway container and the key volume's name."""
    return digest_of([*container_identity_v1(container), _key_volume(spec)])


def _canonical(source: Any) -> str:
    return orjson.dumps(source, option=orjson.OPT_SORT_KEYS).decode()


def volume_sources(container: Mapping[str, Any], spec: Mapping[str, Any]) -> Sources:
    """Each volume the container mounts with its source (``defaultMode`` dropped)."""
    mounted = mounted_volumes(container, spec)
    return tuple((str(name), _canonical(source)) for name, source in mounted)


def injected_v1(public_key_configmap: str, server_name: str) -> dict[str, dict[str, Any]]:
    """The sources v1 gave the volumes its gateway mounts, by volume name."""
    key_item = {"key": server_name, "path": "key"}
    return {
        KEY_VOLUME: {"configMap": {"name": public_key_configmap}},
        AUDIT_KEY_VOLUME: {
            "secret": {"secretName": AUDIT_KEY_SECRET, "items": [key_item], "optional": False}
        },
        ANCHORS_VOLUME: {"configMap": {"name": ANCHORS_CONFIGMAP, "optional": True}},
    }


def volumes_as_injected(
    sources: Sequence[tuple[str, str]], public_key_configmap: str, server_name: str
) -> str | None:
    """None when every mounted volume has the source v1 injected; else which do not."""
    expected = injected_v1(public_key_configmap, server_name)
    wrong = sorted(
        name
        for name, source in sources
        if name not in expected or source != _canonical(expected[name])
    )
    if not wrong:
        return None
    names = ", ".join(wrong)
    return f"sealed by the previous release, but volume(s) {names} differ from what it injected"
