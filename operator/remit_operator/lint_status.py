"""The ``Warnings`` condition and event of AgentPolicies and ConsentGrants.

A resource can be valid and still unable to work as written: a policy or grant naming a server
that does not exist in its namespace, a glob that can never match, a ``when`` that is not
boolean, a grant already expired when it was created. ``remit validate`` warns about these
offline (``remit.api.lint``); here the same checks become a status condition that
``kubectl describe`` shows, and a Warning event when they first appear or change. The server
names come from the operator's index, as the resource's own event is handled.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

import kopf

from remit.api.common import Resource
from remit.api.lint import findings
from remit_operator.runtime import Runtime
from remit_operator.status import warnings_condition


def warn(
    rt: Runtime, body: kopf.Body, resource: Resource, status: dict[str, Any], now: datetime
) -> None:
    """Add the ``Warnings`` condition to ``status``; post a Warning event when it changes."""
    namespace = resource.metadata.namespace
    servers = [s.metadata.name for s in rt.index.servers.values()
               if s.metadata.namespace == namespace]  # fmt: skip
    created = (body.get("metadata") or {}).get("creationTimestamp")
    applied_at = None
    if isinstance(created, str):
        with contextlib.suppress(ValueError):
            applied_at = datetime.fromisoformat(created)
    found = findings(resource, servers=servers, applied_at=applied_at, applied="its creation")
    cond = warnings_condition(body, found, now)
    status["conditions"].append(cond)
    before = [c for c in (body.get("status") or {}).get("conditions") or []
              if c.get("type") == "Warnings"]  # fmt: skip
    if found and (not before or before[0].get("message") != cond["message"]):
        rt.event(dict(body), "Warning", cond["reason"], cond["message"])
