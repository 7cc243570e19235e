"""Server-to-client messages that are not responses, and which of them a caller may see.

Responses are matched to the request they answer (``exchange.py``); notifications and server
requests carry no such link, so they used to pass uninspected, and a caller who obtained
another's stream saw that user's progress. Each one is now judged for the caller receiving it:

- ``notifications/progress`` only for a progress token one of the caller's own forwarded
  requests carried (``ProgressTokens``, remembered while that request is in flight);
- ``notifications/resources/updated`` only for a resource the caller may read now;
- server requests (sampling, elicitation, roots, ping, tasks) and ``notifications/message``
  (logging) only to the session they arrived on (``attribution.py``): on a GET stream they need
  a session the caller owns; without one they are dropped as ``unattributed_message``;
- the other notifications the protocol lets a server send (list changes, cancellation,
  elicitation completion, task status) pass;
- any other method is dropped (fail closed): the gateway cannot judge what it does not know.

A dropped message is logged and counted; an unattributed one is also recorded, aggregated
per caller (``refusals.py``), so a chatty server cannot fill the log.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final

import orjson

from remit.gateway.attribution import POST_ORIGIN, SESSION_BOUND_NOTIFICATIONS, Origin
from remit.policy.decision import Reason
from remit.policy.engine import Engine
from remit.policy.request import Identity, Request

SERVER_NOTIFICATIONS: Final = frozenset(
    {
        "notifications/cancelled",
        "notifications/progress",
        "notifications/message",
        "notifications/resources/updated",
        "notifications/resources/list_changed",
        "notifications/tools/list_changed",
        "notifications/prompts/list_changed",
        "notifications/elicitation/complete",
        "notifications/tasks/status",
        "notifications/subscriptions/acknowledged",
    }
)
"""Every revision's ``ServerNotification`` methods (2025-06-18, 2025-11-25, 2026-07-28)."""
SERVER_REQUESTS: Final = frozenset(
    {
        "ping",
        "sampling/createMessage",
        "roots/list",
        "elicitation/create",
        "tasks/get",
        "tasks/result",
        "tasks/list",
        "tasks/cancel",
    }
)
"""Every revision's ``ServerRequest`` methods."""
PROGRESS_NOT_THEIRS: Final = "progress_not_theirs"
RESOURCE_NOT_READABLE: Final = "resource_not_readable"
UNKNOWN_METHOD: Final = "unknown_method"
UNATTRIBUTED: Final = Reason.UNATTRIBUTED_MESSAGE


def progress_token(params: Mapping[str, Any]) -> str | None:
    """The request's ``_meta.progressToken`` as a comparable key (JSON text), or None."""
    meta = params.get("_meta")
    token = meta.get("progressToken") if isinstance(meta, Mapping) else None
    if isinstance(token, bool) or not isinstance(token, str | int):
        return None
    return orjson.dumps(token).decode()


def _owner(identity: Identity) -> tuple[str, str, str]:
    return (identity.issuer, identity.subject, identity.agent)


class ProgressTokens:
    """Progress tokens of forwarded requests still in flight, per caller; bounded LRU."""

    def __init__(self, limit: int = 10_000) -> None:
        self._tokens: OrderedDict[tuple[tuple[str, str, str], str], None] = OrderedDict()
        self._limit = limit

    def remember(self, identity: Identity, token: str) -> None:
        """``identity`` forwarded a request carrying ``token``."""
        self._tokens[(_owner(identity), token)] = None
        self._tokens.move_to_end((_owner(identity), token))
        while len(self._tokens) > self._limit:
            self._tokens.popitem(last=False)

    def forget(self, identity: Identity, token: str) -> None:
        """The request carrying ``token`` ended."""
        self._tokens.pop((_owner(identity), token), None)

    def owns(self, identity: Identity, token: str) -> bool:
        """Whether ``token`` belongs to a request of ``identity`` still in flight."""
        return (_owner(identity), token) in self._tokens

    def __len__(self) -> int:
        return len(self._tokens)


def judge(
    message: Mapping[str, Any],
    identity: Identity,
    engine: Engine | None,
    progress: ProgressTokens,
    origin: Origin = POST_ORIGIN,
    *,
    owned: bool = False,
) -> str | None:
    """None when ``identity`` may see the server's ``message``; else why it is dropped.
    ``engine`` None means no bundle is in force: nothing is judged visible. ``origin`` is
    where it arrived; ``owned`` whether its session (if any) is bound to ``identity`` now."""
    if engine is None:
        return Reason.NO_BUNDLE
    method = message.get("method")
    session_bound = "id" in message or method in SESSION_BOUND_NOTIFICATIONS
    if session_bound and origin.standalone and not owned:
        return UNATTRIBUTED
    params = message.get("params")
    params = params if isinstance(params, Mapping) else {}
    if method == "notifications/progress":
        token = params.get("progressToken")
        key = progress_token({"_meta": {"progressToken": token}})
        return None if key is not None and progress.owns(identity, key) else PROGRESS_NOT_THEIRS
    if method == "notifications/resources/updated":
        uri = params.get("uri")
        if not isinstance(uri, str) or not uri:
            return RESOURCE_NOT_READABLE
        allowed = engine.decide(Request(identity, "resources/read", uri)).allowed
        return None if allowed else RESOURCE_NOT_READABLE
    if method in SERVER_NOTIFICATIONS or method in SERVER_REQUESTS:
        return None
    return UNKNOWN_METHOD


__all__ = ["ProgressTokens", "judge", "progress_token"]
