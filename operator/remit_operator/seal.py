"""Which pods count as sidecars: only those the webhook injected, for the server they claim.

Anyone who can create a pod can write the ``remit.dev/mcpserver`` annotation. Were such a pod
trusted, the tool pins it reports would join the bundle and the serial it reports would raise
the serial floor. So the webhook seals what it injects: an HMAC, under a key derived from the
bundle-signing key (which never leaves the operator), over the MCPServer's uid and name and a
digest of the gateway container and every volume it mounts, exactly as injected. A pod counts
only when

- its seal verifies over the gateway container it *really* runs (the digest is recomputed from
  the stored pod spec, so editing the image, command, environment, mounts, security context,
  probes or lifecycle hooks, moving it in the pod, or pointing any of its volumes elsewhere:
  another public key, another anchors ConfigMap, breaks it),
- the seal names the MCPServer the annotation claims, with its current uid (a server deleted
  and re-created under the same name does not inherit the old pods), and
- the server's selector still matches the pod's labels,

and its shape lets nothing else bind the gateway's ports first or reach into it
(``podshape.py``). The seal proves the pod spec; what answers on the admin port is the gateway
only as far as that shape check reaches (docs/operator.md, "Which pods count").

Copying a seal together with the identical container into another pod of the same namespace
and shape yields a pod that runs the genuine gateway with the genuine configuration: it is a
sidecar.

The digest (v3; v2, never released, lacked probes, lifecycle, workingDir, stdin/tty, the newer
mount fields and the place) covers only fields the API server never defaults or rewrites
(image, command, args, workingDir, env, volume mounts, security context, restart policy,
ports, what probes and lifecycle hooks run, stdin/tty, the source of each mounted volume
without its defaulted ``defaultMode``): defaulted fields such as probe timeouts, the
``httpGet`` scheme or quantity canonicalization would otherwise break it, so resources are not
covered. (The argument digest key is no volume at all: the operator delivers it to the
running process, ``auditkeys.py``.)

Pods the previous release injected carry a v1 seal, whose digest covered fewer container fields
(``seal_v1.container_identity_v1``) and, of the volumes, only the public-key ConfigMap's name.
Refusing them would leave every running sidecar on its last bundle (no revocation, no policy
change) until each workload is restarted, so while ``REMIT_ACCEPT_V1_SEALS`` is on (the
default for this release) a v1 seal counts on a pod the API server created before
``REMIT_V1_SEALS_BEFORE`` when, in addition, every volume the gateway mounts is checked
directly against the source v1 injected (``seal_v1.py``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from joserfc.jwk import OKPKey

KEY_VOLUME = "remit-bundle-key"
_CONTEXT = b"remit.dev injection seal v3\0"  # v3: probes, lifecycle, place (v2 unreleased)


def _env(entry: Mapping[str, Any]) -> list[Any]:
    source = entry.get("valueFrom") or {}
    field = (source.get("fieldRef") or {}).get("fieldPath") if isinstance(source, Mapping) else None
    return [entry.get("name"), entry.get("value"), field, sorted(source) if source else None]


def _source(value: Any) -> Any:
    """A volume source without the fields the API server fills in (``defaultMode``)."""
    if not isinstance(value, Mapping):
        return value
    return {k: v for k, v in value.items() if k != "defaultMode"}


def mounted_volumes(container: Mapping[str, Any], spec: Mapping[str, Any]) -> list[Any]:
    """What each volume the container mounts is (its source), by name, in name order."""
    mounted = sorted(
        {str(m.get("name")) for m in container.get("volumeMounts") or [] if isinstance(m, Mapping)}
    )
    volumes = {v.get("name"): v for v in spec.get("volumes") or [] if isinstance(v, Mapping)}
    identity: list[Any] = []
    for name in mounted:
        volume = volumes.get(name) or {}
        identity.append([name, {k: _source(v) for k, v in volume.items() if k != "name"}])
    return identity


_TIMING = frozenset(
    {
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
        "terminationGracePeriodSeconds",
    }
)


def _handler(handler: Any) -> Any:
    """What a probe or lifecycle handler runs, by kind, without what the API server defaults
    (``httpGet.scheme``, ``grpc.service``): the command, path, host, headers and port."""
    if not isinstance(handler, Mapping):
        return handler
    out: list[Any] = []
    for kind in sorted(str(k) for k in handler):
        value = handler[kind]
        if kind in _TIMING:
            continue
        if kind == "httpGet" and isinstance(value, Mapping):
            value = [value.get(f) for f in ("path", "port", "host", "httpHeaders")]
        elif kind == "grpc" and isinstance(value, Mapping):
            value = [value.get("port"), value.get("service") or ""]
        out.append([kind, value])
    return out


def container_identity(container: Mapping[str, Any]) -> list[Any]:
    """The container's fields the seal covers: every one that decides what runs in it, or
    with what, that the API server never defaults (so a stored pod still verifies)."""
    lifecycle = container.get("lifecycle")
    return [
        container.get("name"),
        container.get("image"),
        container.get("command"),
        container.get("args"),
        container.get("workingDir"),
        [_env(e) for e in container.get("env") or [] if isinstance(e, Mapping)],
        container.get("envFrom"),
        [
            [
                m.get("name"),
                m.get("mountPath"),
                bool(m.get("readOnly")),
                m.get("subPath"),
                m.get("subPathExpr"),
                m.get("mountPropagation"),
                m.get("recursiveReadOnly"),
            ]
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
        [_handler(container.get(p)) for p in ("startupProbe", "readinessProbe", "livenessProbe")],
        (
            [[str(k), _handler(v)] for k, v in sorted(lifecycle.items())]
            if isinstance(lifecycle, Mapping)
            else lifecycle
        ),
        bool(container.get("stdin")),
        bool(container.get("stdinOnce")),
        bool(container.get("tty")),
    ]


def gateway_place(container: Mapping[str, Any], spec: Mapping[str, Any]) -> list[Any]:
    """Where the container sits in the pod: a native sidecar must be the first init container
    (every other init container and native sidecar starts after its startup probe passes)."""
    for key in ("initContainers", "containers"):
        for index, entry in enumerate(spec.get(key) or []):
            if entry is container:
                return [key, index]
    return [None, None]


def digest_of(identity: list[Any]) -> str:
    """SHA-256 over an identity list, keys sorted."""
    return hashlib.sha256(orjson.dumps(identity, option=orjson.OPT_SORT_KEYS)).hexdigest()


def container_digest(container: Mapping[str, Any], spec: Mapping[str, Any]) -> str:
    """SHA-256 over the identity of the gateway container, its place in the pod and every
    volume it mounts."""
    return digest_of(
        [
            *container_identity(container),
            gateway_place(container, spec),
            mounted_volumes(container, spec),
        ]
    )


def _key(signing_key: OKPKey, context: bytes) -> bytes:
    private = str(signing_key.as_dict(private=True).get("d", ""))
    return hashlib.sha256(context + private.encode()).digest()


def _message(server_uid: str, server_ref: str, digest: str) -> bytes:
    return orjson.dumps([server_uid, server_ref, digest])


def seal(
    signing_key: OKPKey, server_uid: str, server_ref: str, digest: str, *, context: bytes = _CONTEXT
) -> str:
    """The seal the webhook writes on a pod it injected (``context``: v1 for verification)."""
    message = _message(server_uid, server_ref, digest)
    mac = hmac.new(_key(signing_key, context), message, hashlib.sha256)
    return f"{signing_key.kid}:{mac.hexdigest()}"


def verify(
    keys: Iterable[OKPKey],
    server_uid: str | None,
    server_ref: str,
    digest: str | None,
    value: str | None,
    *,
    context: bytes = _CONTEXT,
) -> bool:
    """Whether ``value`` is a seal by one of ``keys`` over this server and container digest."""
    if not value or not digest or not server_uid or len(value) > 256:
        return False
    for key in keys:
        wanted = seal(key, server_uid, server_ref, digest, context=context)
        if hmac.compare_digest(wanted.encode(), value.encode()):
            return True
    return False
