"""Sidecar injection as pure functions: the injected, sealed pod, or a refusal saying why.

The mutating webhook (``handlers.py``) calls these; tests call them directly too. Injection is
idempotent: a pod that already has the gateway container with a seal this webhook wrote for
its server is returned unchanged (re-invocation); one whose gateway's seal does not verify (a
copy, an edit, a previous release's v1 seal on a new pod) is refused. A pod that matches two
MCPServers, whose containers already use the gateway's ports, or whose shape would let another
process pose as the gateway (``podshape.py``), is refused with a message naming the problem
(``InjectionError``), never admitted ungoverned.

Which server selects a pod is ``selectors.py``; the injected container and volumes are
``gatewayspec.py``; the MutatingWebhookConfiguration that routes pods here is
``webhookconfig.py``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import jsonpatch
from joserfc.jwk import OKPKey

from remit.api.mcpserver import MCPServer
from remit_operator.errors import InjectionError
from remit_operator.gatewayspec import evidence_volumes, gateway_container
from remit_operator.index import (
    KEY_ANNOTATION,
    SEAL_ANNOTATION,
    SERVER_ANNOTATION,
    SERVER_LABEL,
    gateway_spec,
)
from remit_operator.podshape import GATEWAY_CONTAINER, exposure
from remit_operator.seal import KEY_VOLUME, container_digest, seal, verify
from remit_operator.settings import Settings


def _used_ports(spec: Mapping[str, Any]) -> set[int]:
    containers = [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
    return {
        int(p["containerPort"])
        for c in containers
        for p in c.get("ports") or []
        if "containerPort" in p
    }


def _check_shape(spec: Mapping[str, Any], server: MCPServer) -> None:
    why = exposure(spec)
    if why is not None:
        raise InjectionError(
            f"{why}, so something other than the gateway of MCPServer {server.ref} could "
            "answer on its ports or run inside it; the operator would never trust it"
        )


def inject(
    pod: Mapping[str, Any],
    server: MCPServer,
    settings: Settings,
    key: OKPKey,
    *,
    native: bool = False,
    keys: Sequence[OKPKey] = (),
) -> dict[str, Any]:
    """The pod with the gateway sidecar, key volume, pull secrets, label and sealed annotations.

    ``native`` puts the gateway first among the init containers with ``restartPolicy: Always``
    (Kubernetes >= 1.29): every other init container and native sidecar starts after its
    startup probe passed, and a Job's pod completes when its containers do; otherwise it is
    one more container. A pod that already has the gateway is returned unchanged when its
    seal verifies for ``server`` under ``key`` or ``keys`` (this webhook's own re-invocation);
    otherwise it is a copied or edited gateway and refused (``InjectionError``), as is a pod
    whose shape would let something else pose as the gateway (``podshape.exposure``).
    """
    result = copy.deepcopy(dict(pod))
    spec = result.setdefault("spec", {})
    present = gateway_spec(spec)
    if present is not None:
        seal_value = (result.get("metadata") or {}).get("annotations", {}).get(SEAL_ANNOTATION)
        digest = container_digest(present, spec)
        uid = server.metadata.uid
        if not verify([key, *keys], uid, server.ref, digest, seal_value):
            raise InjectionError(
                f"pod already has a {GATEWAY_CONTAINER} container that this webhook did not "
                f"inject for MCPServer {server.ref} (its seal does not verify: a copied or "
                "edited gateway); remove it and the remit.dev annotations, the webhook "
                "injects its own"
            )
        _check_shape(spec, server)
        return result
    clash = _used_ports(spec) & {server.spec.gateway.port, server.spec.gateway.admin_port}
    if clash:
        raise InjectionError(
            f"pod already uses port(s) {sorted(clash)}, which MCPServer {server.ref} gives "
            "the gateway"
        )
    grace = spec.get("terminationGracePeriodSeconds")  # the gateway's drain fits inside it
    container = gateway_container(server, settings, native=native, termination_grace=grace)
    if native:
        spec["initContainers"] = [container, *(spec.get("initContainers") or [])]
    else:
        spec.setdefault("containers", []).append(container)
    volumes = spec.setdefault("volumes", [])
    injected = [
        {"name": KEY_VOLUME, "configMap": {"name": settings.signing.public_key_configmap}},
        *evidence_volumes(),
    ]
    taken = {v.get("name") for v in volumes if isinstance(v, Mapping)}
    clash_names = sorted(str(v["name"]) for v in injected if v["name"] in taken)
    if clash_names:  # the pod's own volume would stand in for the one the gateway trusts
        raise InjectionError(
            f"pod already has volume(s) {', '.join(clash_names)}, which the gateway of "
            f"MCPServer {server.ref} mounts; rename them"
        )
    volumes.extend(injected)
    pull = spec.setdefault("imagePullSecrets", [])
    for name in settings.gateway.pull_secrets:
        if not any(s.get("name") == name for s in pull):
            pull.append({"name": name})
    if not pull:
        del spec["imagePullSecrets"]
    metadata = result.setdefault("metadata", {})
    # The label only narrows the operator's pod watch (the annotation names the server); a
    # label value is at most 63 characters, so a longer name leaves it empty.
    name = server.metadata.name
    metadata.setdefault("labels", {})[SERVER_LABEL] = name if len(name) <= 63 else ""
    annotations = metadata.setdefault("annotations", {})
    annotations[SERVER_ANNOTATION] = server.metadata.name
    annotations[KEY_ANNOTATION] = str(key.kid)
    annotations["remit.dev/gateway-image"] = settings.gateway.image
    _check_shape(spec, server)
    digest = container_digest(gateway_spec(spec) or {}, spec)
    annotations[SEAL_ANNOTATION] = seal(key, server.metadata.uid or "", server.ref, digest)
    return result


def injection_patch(
    pod: Mapping[str, Any],
    server: MCPServer,
    settings: Settings,
    key: OKPKey,
    *,
    native: bool = False,
) -> list[dict[str, Any]]:
    """The JSONPatch that turns ``pod`` into the injected pod (empty if already injected)."""
    patch: list[dict[str, Any]] = jsonpatch.make_patch(
        dict(pod), inject(pod, server, settings, key, native=native)
    ).patch
    return patch


__all__ = ["inject", "injection_patch"]
