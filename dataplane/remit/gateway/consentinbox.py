"""Where a sidecar receives the consent page's URL and sealing key from the operator.

``PUT /v1/consent`` on the admin port takes a delivery (``remit.policy.consentdelivery``):
signed with the key the sidecar trusts for bundles, encrypted to the X25519 key this process
made at start, naming this sidecar's server, fresh, issued after the delivery held (a replay
of an earlier one cannot undo a rotation; the same one again is a no-op). Accepted, it turns
on consent links
(``consent.py``) or changes their URL and key; refused, it is answered 400 with the reason,
logged, and what the sidecar held stays. ``GET /v1/status`` shows ``consent``: the public
``recipient`` key and the digest of what is held (``holds``), never the key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from joserfc.jwk import OKPKey

from remit.errors import ConsentRequestError
from remit.gateway.asgi import Receive, Send, read_body, reply_json
from remit.gateway.consent import ConsentLinks
from remit.policy.consentdelivery import MAX_TOKEN, Recipient, holding, replaces

log = logging.getLogger(__name__)


class ConsentInbox:
    """Receives deliveries and keeps the consent links they configure."""

    def __init__(
        self,
        verify_key: OKPKey,
        server: str,
        ttl: float,
        on_links: Callable[[ConsentLinks], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.recipient = Recipient()
        self.verify_key = verify_key
        self.server = server
        self.ttl = ttl
        self.on_links = on_links
        self.clock = clock
        self.links: ConsentLinks | None = None
        self.holds: str | None = None
        self.issued: float | None = None  # the held delivery's issue time (iat)
        self.refused = 0

    def status(self) -> dict[str, Any]:
        """For ``/v1/status``: where to encrypt a delivery to, and what is held."""
        return {"recipient": self.recipient.public(), "holds": self.holds, "refused": self.refused}

    def receive(self, token: bytes) -> dict[str, Any]:
        """Install a delivery; ``ConsentRequestError`` saying why it is refused."""
        delivery = self.recipient.open(token, self.verify_key, self.server, self.clock())
        holds = holding(delivery.url, delivery.key)
        installed = None if self.issued is None or self.holds is None else (self.issued, self.holds)
        if not replaces(installed, delivery.iat, holds, "consent delivery"):
            return {"holds": holds}  # the same delivery again: nothing to do
        self.issued = delivery.iat
        if self.links is None:
            self.links = ConsentLinks(delivery.url, delivery.key, ttl=self.ttl)
        else:
            self.links.rekey(delivery.url, delivery.key)
        self.holds = holds
        self.on_links(self.links)
        log.info("consent links on: %s", delivery.url)
        return {"holds": self.holds}

    async def put(self, receive: Receive, send: Send) -> None:
        """The ``PUT /v1/consent`` handler (bounded body)."""
        body = await read_body(receive, MAX_TOKEN)
        if body is None:
            await reply_json(send, 413, {"error": "consent delivery too large"})
            return
        try:
            answer = self.receive(body)
        except ConsentRequestError as exc:
            self.refused += 1
            log.warning("consent delivery refused: %s", exc)
            await reply_json(send, 400, {"error": str(exc), "reason": "consent_delivery"})
            return
        await reply_json(send, 200, answer)


__all__ = ["ConsentInbox"]
