"""Holding a call's answer until its decision record is on disk.

Why: with ``fsync`` on, syncing each record before its call proceeds put a disk flush on every
call's path twice. By default (``REMIT_AUDIT_FSYNC_WAIT=true``, ``_STRICT=false``) the
decision record is *written* (in the kernel: a gateway crash cannot lose it) before the call
is forwarded, and synced by the file sink's sync thread while the upstream works
(``audit/syncer.py``). Each admitted call's ticket carries the point to wait for
(``Ticket.synced``); :func:`gated` wraps the client's ``send`` so that nothing, neither the
upstream's answer nor the gateway's own error about it, reaches the client before every
decision of the request is durable; a response relayed on another stream than its request's
waits for its own call's point (:func:`decided_on_disk`, from ``exchange.py``). An answer of a
forwarded call the client has is therefore never backed by a decision record a node crash can
take away (denials are answered once written, not synced: docs/gateway.md#audit-durability).

Fail closed: a sync that fails or does not complete within ``REMIT_AUDIT_TIMEOUT`` raises
:class:`AuditError` at the first ``send``; :func:`withheld` then drops the upstream's answer,
records each call's outcome as ``audit_unavailable`` (refused too while the sink is failing:
the chain's next ``recover`` marker counts it) and answers the client with the gateway's
``audit_unavailable`` error instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from remit.audit.syncer import SyncPoint
from remit.errors import AuditError
from remit.gateway.asgi import Send, reply
from remit.gateway.pending import Call
from remit.gateway.protocol import INTERNAL_ERROR, error_body
from remit.policy.decision import Reason

if TYPE_CHECKING:  # (exchange.py uses decided_on_disk)
    from remit.gateway.exchange import Exchange

log = logging.getLogger(__name__)

#: The outcome of a call whose answer was withheld because its decision record did not sync.
WITHHELD: Final = Reason.AUDIT_UNAVAILABLE.value


def gated(send: Send, calls: Iterable[Call | None]) -> Send:
    """``send``, holding its first message until the decision records of ``calls`` are on
    disk (``send`` itself when none is waiting to be)."""
    points = [
        point
        for call in calls
        if call is not None
        and isinstance(point := getattr(call.token, "synced", None), SyncPoint)
        and not point.durable()
    ]
    return _Gate(send, points) if points else send


class _Gate:
    __slots__ = ("points", "send")

    def __init__(self, send: Send, points: list[SyncPoint]) -> None:
        self.send = send
        self.points = points

    async def __call__(self, message: dict[str, Any]) -> None:
        while self.points:  # a point is dropped only once durable: a cancelled wait keeps it
            await self.points[0].wait()  # AuditError: the record may not be on disk
            del self.points[0]
        await self.send(message)


async def decided_on_disk(call: Call) -> bool:
    """Wait for ``call``'s decision record to be on disk; False (drop its response) if it
    never will be. For a response relayed on another stream than its request's (a GET stream
    replaying an earlier POST's answer): that stream's gate holds only for its own calls."""
    point = getattr(call.token, "synced", None)
    if not isinstance(point, SyncPoint):
        return True
    try:
        await point.wait()
    except AuditError as exc:
        log.error("dropped a response whose call's decision record is not on disk: %s", exc)
        return False
    return True


async def withheld(
    exchange: Exchange, exc: AuditError, send: Send, stream: Call | None = None
) -> None:
    """A decision record did not sync after its call was forwarded: nothing of the answer was
    sent; drop it, record the calls' (and ``stream``'s) outcomes, answer ``audit_unavailable``."""
    log.error("answer withheld: a decision record is not on disk: %s", exc)
    if exchange.response is not None:
        exchange.response.abort()
    detail = f"{WITHHELD}: the answer was withheld, its decision record is not on disk ({exc})"
    await exchange.fail(detail, kind=WITHHELD)
    if stream is not None:
        await exchange.ended(stream, exchange.status, detail, kind=WITHHELD)
    message = f"decision could not be recorded ({WITHHELD})"
    body = error_body(exchange.single_id, INTERNAL_ERROR, message, {"reason": WITHHELD})
    await reply(send, 500, body)
