"""The ``Warnings`` condition and event of AgentPolicies and ConsentGrants.

A resource can be valid and still unable to work as written: a policy or grant naming a server
that does not exist in its namespace, a glob that can never match, a ``when`` that is not
boolean, a grant already expired when it was created. ``remit validate`` warns about these
offline (``remit.api.lint``); here the same checks become a status condition that
``kubectl describe`` shows, and a Warning event when they first appear or change. The server
names come from the operator's index, as the resource's own event is handled; when an
MCPServer appears or goes, the policies and grants that name it are read again and re-checked
(``recheck``), so a ``NoServer`` warning clears once the server exists.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

import kopf

from remit.api.agentpolicy import AgentPolicy
from remit.api.common import API_VERSION, Resource
from remit.api.lint import findings
from remit.api.mcpserver import MCPServer
from remit_operator.errors import KubeError
from remit_operator.kube import object_path
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


log = logging.getLogger(__name__)
MAX_RECHECK = 512  # resources re-read per server event; more wait for their own next event


async def recheck(
    rt: Runtime, server: MCPServer, handle: Callable[[str, dict[str, Any]], Awaitable[None]]
) -> None:
    """Re-read and re-handle the policies and grants naming ``server`` (it appeared or went)."""
    namespace, name = server.metadata.namespace, server.metadata.name
    named: list[tuple[str, str, str]] = [
        ("AgentPolicy", "agentpolicies", p.metadata.name)
        for p in rt.index.policies.values()
        if isinstance(p, AgentPolicy) and p.metadata.namespace == namespace
        and any(fnmatchcase(name, s) for s in p.spec.servers)
    ]  # fmt: skip
    named += [("ConsentGrant", "consentgrants", g.metadata.name)
              for g in rt.index.grants_for(server.ref)]  # fmt: skip
    if len(named) > MAX_RECHECK:
        log.info("%s: re-checking %d of %d resources", server.ref, MAX_RECHECK, len(named))
    for kind, plural, resource in named[:MAX_RECHECK]:
        try:
            body = await rt.kube.get(object_path(API_VERSION, plural, namespace, resource))
        except KubeError as exc:  # deleted meanwhile, or the API is away: its event will come
            log.debug("cannot re-read %s %s/%s: %s", kind, namespace, resource, exc)
            continue
        await handle(kind, body)
