"""Giving each sidecar its server's argument digest key, encrypted to that process.

The operator keeps one root key in a Secret of its own namespace (``REMIT_AUDIT_KEY_SECRET``,
key ``key``, at least 32 bytes of text or binary, ``remit.audit.anchors.key_material``;
created when absent, like the consent key) and derives each
server's key from it (``remit.audit.keydelivery.server_key``: HMAC over ``namespace/name``),
so no Secret is written into a governed namespace and no pod spec names a key a pod author
could swap. Each sidecar shows a per-process X25519 public key in ``/v1/status``
(``auditKey.recipient``) and the id of the key it holds (``auditKey.holds``); the operator
``PUT``s ``/v1/audit-key`` a delivery signed with the bundle key and encrypted to it.

A sidecar already holding the current key's id gets nothing; the periodic resync reads what
every sidecar holds again (``check_all``) and delivers anew to one that holds another key
than it was given (a replayed delivery, which the sidecar also refuses by issue time); one
that restarted (new
recipient, holds nothing) gets it again in the pass that pushes its first bundle. A sidecar
the previous release injected (v1 seal, ``seal_v1.py``) whose status shows no ``auditKey``
takes no delivery: it reads its key from the Secret it mounts. It is noted once per
incarnation (``MOUNTED``), neither asked again nor counted as failed, so its bundles flow and
no retry loop starts. The Secret
is read at most every ``KEY_TTL`` seconds: replacing ``key`` (a rotation) reaches every sidecar
within a periodic check after that, and records name the new key's id from then on.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from joserfc.jwk import OKPKey

from remit.api.mcpserver import MCPServer
from remit.audit.anchors import MIN_KEY_BYTES, key_material
from remit.audit.arguments import key_id
from remit.audit.keydelivery import seal_key, server_key
from remit.errors import AuditError
from remit_operator.consentpush import ConsentKey
from remit_operator.delivery import MOUNTED, deliver_sealed
from remit_operator.index import Sidecar
from remit_operator.keys import Keyring
from remit_operator.push import Pusher, PushResult


class AuditRootKey(ConsentKey):
    """The root of every server's digest key, from its Secret (created when absent)."""

    what = "audit digest root key"
    settle = 0.0  # only sidecars use it: a rotation is delivered at once

    def secret_name(self) -> str:
        return self.settings.evidence.key_secret

    def key_of(self, secret: dict[str, Any]) -> bytes:
        data = secret.get("data") or {}
        try:  # decoded once: the API's base64; what it holds is text or binary (key_material)
            raw = base64.b64decode(str(data.get("key", "")), validate=True)
        except ValueError as exc:
            raise AuditError("key `key` is not base64") from exc
        try:
            return key_material(raw)  # as created: 32 random bytes as base64 text (_create)
        except AuditError as exc:
            raise AuditError(f"key `key` must hold at least {MIN_KEY_BYTES} bytes") from exc


async def deliver_keys(
    pusher: Pusher,
    keyring: Keyring,
    server: MCPServer,
    root: bytes,
    sidecars: Sequence[Sidecar],
    held: dict[str, tuple[str, str]],
    legacy: Collection[str] = (),
    check_all: bool = False,
    known: Mapping[str, PushResult] | None = None,
) -> list[tuple[Sidecar, str]]:
    """Deliver ``server``'s key to every sidecar not known to hold it; ``held`` (pod →
    (incarnation, key id or ``MOUNTED``)) is updated; return the sidecars that failed, with
    why. ``legacy``: pods injected by the previous release (they may take no delivery).
    ``check_all`` (the periodic resync): read what every sidecar holds, even one this
    incarnation was delivered to, and deliver again where it differs. ``known``: statuses
    this pass already read (``Pusher.status_all``), not read again. The loop is
    ``delivery.deliver_sealed``."""
    key = server_key(root, server.ref)

    def seal(signing: OKPKey, recipient: dict[str, Any]) -> bytes:
        return seal_key(signing, recipient, server.ref, key, time.time())

    return await deliver_sealed(
        pusher,
        keyring,
        server,
        sidecars,
        held,
        want=key_id(key),
        what="audit key delivery",
        part=lambda outcome: outcome.audit_key,
        seal=seal,
        path="/v1/audit-key",
        refused=(AuditError,),
        noun="digest key",
        legacy=legacy,
        check_all=check_all,
        known=known,
    )


__all__ = ["MOUNTED", "AuditRootKey", "deliver_keys"]
