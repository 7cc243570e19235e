"""Where a sidecar receives its argument digest key from the operator, and waits for it.

``PUT /v1/audit-key`` on the admin port takes a delivery (``remit.audit.keydelivery``): signed
with the key the sidecar trusts for bundles, encrypted to the X25519 key this process made at
start, naming this sidecar's server, fresh. Accepted, the key keys every argument digest from
then on (records name it by id, ``arguments.key``); a later delivery of another key (a rotation)
replaces it, if it was issued later than the one held (``iat`` only moves forward: a captured
delivery replayed within its 5-minute freshness cannot roll a rotation back; the same delivery
again is a no-op). Refused, it is answered 400 with the reason, counted and logged; the key held
stays. ``GET /v1/status`` shows ``auditKey``: the public ``recipient`` key, the id of the key
held (``holds``, never the key) and the refusals.

Until the first key arrives the sidecar fails closed: ``/readyz`` answers 503 and every MCP
request is refused (503, reason ``audit_unavailable``, recorded as a refusal, which carries no
argument digest). Records with plain sha256 digests would be exactly what the key exists to
prevent (a guessable argument found from its digest, in a SIEM where it cannot be recalled),
and the wait is one operator pass after the pod starts (docs/architecture.md, "Evidence").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from joserfc.jwk import OKPKey

from remit.audit.arguments import key_id
from remit.audit.keydelivery import open_delivery
from remit.errors import AuditError, ConsentRequestError
from remit.gateway.asgi import Receive, Send, read_body, reply_json
from remit.gateway.hooks import Rejection
from remit.gateway.replies import NO_BUNDLE_STATUS, UNAVAILABLE
from remit.policy.consentdelivery import MAX_TOKEN, Recipient, replaces
from remit.policy.decision import Reason

log = logging.getLogger(__name__)

WAITING = "the argument digest key has not been delivered by the operator yet"


class AuditKeyInbox:
    """Receives digest key deliveries; ``pending`` until the first one is installed."""

    def __init__(
        self,
        verify_key: OKPKey,
        server: str,
        on_key: Callable[[bytes], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.recipient = Recipient()
        self.verify_key = verify_key
        self.server = server
        self.on_key = on_key
        self.clock = clock
        self.key: bytes | None = None
        self.installed: tuple[float, str] | None = None  # (iat, key id) of the delivery held
        self.refused = 0

    @property
    def pending(self) -> str | None:
        """Why records cannot be written as configured yet (None once a key is held)."""
        return WAITING if self.key is None else None

    def status(self) -> dict[str, Any]:
        """For ``/v1/status``: where to encrypt a delivery to, and which key is held."""
        holds = key_id(self.key) if self.key is not None else None
        return {"recipient": self.recipient.public(), "holds": holds, "refused": self.refused}

    def receive(self, token: bytes) -> dict[str, Any]:
        """Install a delivered key; ``AuditError`` saying why it is refused."""
        key, iat = open_delivery(self.recipient, token, self.verify_key, self.server, self.clock())
        try:
            if not replaces(self.installed, iat, key_id(key), "digest key delivery"):
                return {"holds": key_id(key)}  # the same delivery again: nothing to do
        except ConsentRequestError as exc:
            raise AuditError(str(exc)) from exc
        self.installed = (iat, key_id(key))
        if key != self.key:
            previous = key_id(self.key) if self.key is not None else None
            self.key = key
            self.on_key(key)
            log.info("argument digest key %s installed (was %s)", key_id(key), previous)
        return {"holds": key_id(key)}

    async def put(self, receive: Receive, send: Send) -> None:
        """The ``PUT /v1/audit-key`` handler (bounded body)."""
        body = await read_body(receive, MAX_TOKEN)
        if body is None:
            self.refused += 1
            await reply_json(send, 413, {"error": "audit key delivery too large"})
            return
        try:
            answer = self.receive(body)
        except AuditError as exc:
            self.refused += 1
            log.warning("audit key delivery refused: %s", exc)
            await reply_json(send, 400, {"error": str(exc), "reason": "audit_key_delivery"})
            return
        await reply_json(send, 200, answer)


def key_pending(message: str) -> Rejection:
    """The answer to an MCP request while the sidecar waits for its key (fail closed)."""
    error = {
        "code": UNAVAILABLE,
        "message": f"{message}: denying everything",
        "data": {"reason": Reason.AUDIT_UNAVAILABLE.value},
    }
    body = {"jsonrpc": "2.0", "id": None, "error": error}
    return Rejection(NO_BUNDLE_STATUS, body, {"Retry-After": "1"})


__all__ = ["WAITING", "AuditKeyInbox", "key_pending"]
