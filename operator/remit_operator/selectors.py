"""Which MCPServer governs a pod: Kubernetes label-selector matching, failing closed.

The webhook asks it when a pod is created (``webhook.inject``) and the trust check asks it
again on every sync (``trust.py``: a pod relabelled away from its server stops counting), so
both must judge a selector the same way. An empty selector matches nothing, never everything,
and a pod two MCPServers select is refused rather than given to either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from remit.api.mcpserver import LabelSelector, MCPServer
from remit_operator.errors import InjectionError


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics; an empty selector matches nothing (never everything)."""
    if not selector.match_labels and not selector.match_expressions:
        return False
    if any(labels.get(k) != v for k, v in selector.match_labels.items()):
        return False
    for expr in selector.match_expressions:
        present, value = expr.key in labels, labels.get(expr.key)
        ok = {
            "In": present and value in expr.values,
            "NotIn": not present or value not in expr.values,
            "Exists": present,
            "DoesNotExist": not present,
        }[expr.operator]
        if not ok:
            return False
    return True


def matching_server(pod: Mapping[str, Any], servers: Iterable[MCPServer]) -> MCPServer | None:
    """The one MCPServer whose selector matches the pod; InjectionError if several do."""
    metadata = pod.get("metadata") or {}
    labels = metadata.get("labels") or {}
    namespace = metadata.get("namespace")
    found = [
        s
        for s in servers
        if s.metadata.namespace == namespace and selector_matches(s.spec.selector, labels)
    ]
    if len(found) > 1:
        names = ", ".join(sorted(s.metadata.name for s in found))
        raise InjectionError(
            f"pod matches several MCPServers ({names}); make their selectors disjoint"
        )
    return found[0] if found else None


__all__ = ["matching_server", "selector_matches"]
