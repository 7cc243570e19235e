"""Pods whose shape lets something other than the gateway answer on its ports, or run in it.

The injection seal (``seal.py``) proves what the gateway container of a pod spec is; the
operator then talks to whatever answers on the pod IP's admin port. That is the gateway only
if nothing else in the pod can bind the port first or reach into the gateway's process. So a
pod counts as a sidecar only when, besides its seal verifying:

- it does not share the node's network, PID or IPC namespace (``hostNetwork``, ``hostPID``,
  ``hostIPC``: another process on the node could hold the ports, or the pod could reach the
  node's), nor a process namespace among its containers (``shareProcessNamespace``: another
  container could ptrace or signal the gateway, read its memory through ``/proc``);
- it has no ephemeral container (``kubectl debug`` adds them later through a subresource, into
  the running pod; the pod update event re-sorts it);
- a gateway injected as a native sidecar is the first init container, so every other init
  container and native sidecar starts only after the gateway's startup probe passed (it holds
  its ports by then); a gateway injected as a plain container shares the pod with no native
  sidecar (those run before, and beside, every plain container).

The webhook refuses such a pod at creation (``webhook.inject``); the trust check refuses it
whenever it is seen (``trust.py``), including a pod the webhook never saw.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

GATEWAY_CONTAINER = "remit-gateway"
_HOST_FIELDS = ("hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace")


def _names(entries: Any) -> list[str]:
    return [str(c.get("name")) for c in entries or [] if isinstance(c, Mapping)]


def exposure(spec: Mapping[str, Any]) -> str | None:
    """Why this pod spec lets something else pose as (or run inside) its gateway; None if not."""
    shared = [field for field in _HOST_FIELDS if spec.get(field) is True]
    if shared:
        return f"the pod sets {', '.join(shared)}"
    ephemeral = _names(spec.get("ephemeralContainers"))
    if ephemeral:
        return f"the pod has ephemeral container(s) {', '.join(ephemeral)}"
    init = [c for c in spec.get("initContainers") or [] if isinstance(c, Mapping)]
    names = _names(init)
    if GATEWAY_CONTAINER in names:
        if names[0] != GATEWAY_CONTAINER:
            return f"init container {names[0]} starts before the gateway"
        return None
    native = [str(c.get("name")) for c in init if c.get("restartPolicy") == "Always"]
    if native:
        return f"native sidecar(s) {', '.join(native)} start before the gateway"
    return None
