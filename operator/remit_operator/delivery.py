"""One loop for handing each sidecar a secret sealed to its own process.

The consent page's URL and key (``consentpush.py``) and a server's argument digest key
(``auditkeys.py``) reach sidecars the same way: read each sidecar's ``/v1/status`` (or reuse
what this pass already read), skip one whose status says it ``holds`` what it should, seal
the secret to the ``recipient`` public key it shows, signed with the bundle key it was
started with, ``PUT`` it to an admin path, and count anything but a 200 as a failure. Only
the status field, the sealing, the path and how a previous release's sidecar (one that
takes no delivery, ``MOUNTED``) is treated differ; they are the parameters here, so a fix
to the loop reaches both deliveries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import httpx
from joserfc.jwk import OKPKey

from remit.api.mcpserver import MCPServer
from remit_operator.index import Sidecar
from remit_operator.keys import Keyring
from remit_operator.push import Pusher, PushResult

log = logging.getLogger(__name__)
MOUNTED = "mounted"  # in ``held``: a previous release's sidecar, keyed from its own mount

# Seals the secret to one sidecar: (bundle signing key, its recipient public key) → token.
Seal = Callable[[OKPKey, dict[str, Any]], bytes]


def recipient_of(status: Any) -> tuple[dict[str, Any] | None, str | None]:
    """One delivery's part of a sidecar's status: its public key and what it holds."""
    if not isinstance(status, dict):
        return None, None
    recipient, holds = status.get("recipient"), status.get("holds")
    ok = isinstance(recipient, dict) and len(recipient) <= 8
    return (recipient if ok else None), (holds if isinstance(holds, str) else None)


def _settled(held: tuple[str, str] | None, sidecar: Sidecar, want: str) -> bool:
    """Whether this incarnation holds ``want``, or reads its own from its mount."""
    return held is not None and held[0] == sidecar.incarnation and held[1] in (want, MOUNTED)


async def deliver_sealed(
    pusher: Pusher,
    keyring: Keyring,
    server: MCPServer,
    sidecars: Sequence[Sidecar],
    held: dict[str, tuple[str, str]],
    *,
    want: str,
    what: str,
    part: Callable[[PushResult], Any],
    seal: Seal,
    path: str,
    refused: tuple[type[Exception], ...],
    noun: str | None = None,
    legacy: Collection[str] = (),
    check_all: bool = False,
    known: Mapping[str, PushResult] | None = None,
) -> list[tuple[Sidecar, str]]:
    """Deliver to every sidecar not known to hold ``want``; ``held`` (pod → (incarnation,
    ``want``, another holding or ``MOUNTED``)) is updated; return the sidecars that failed,
    with why (each prefixed with ``what``, e.g. ``consent delivery``).

    ``part`` picks this delivery's field of a sidecar's status; ``seal`` seals the secret to
    a sidecar's recipient key (raising one of ``refused`` when it cannot); ``path`` is where
    it is ``PUT``. ``noun`` names what is held in the logs (a re-delivery to a sidecar that
    held another one is logged only when it is given). ``legacy``: pods injected by the
    previous release; one whose status shows no ``part`` at all reads its own from its mount
    and takes none (``MOUNTED``). ``check_all`` (the periodic resync): read what every
    sidecar holds, even one this incarnation was delivered to, and deliver again where it
    differs. ``known``: statuses this pass already read (``Pusher.status_all``)."""
    caught: tuple[type[Exception], ...] = (*refused, httpx.HTTPError)
    todo = [s for s in sidecars if check_all or not _settled(held.get(s.pod), s, want)]
    port = server.spec.gateway.admin_port
    failed: list[tuple[Sidecar, str]] = []
    for outcome in await pusher.status_all(todo, port, known) if todo else []:
        sidecar = outcome.sidecar
        recipient, holds = recipient_of(part(outcome))
        before = held.get(sidecar.pod)
        if holds == want:
            held[sidecar.pod] = (sidecar.incarnation, want)
            continue
        if outcome.error is None and part(outcome) is None and sidecar.pod in legacy:
            if before != (sidecar.incarnation, MOUNTED):
                log.info("%s: pod %s reads its %s from its mount", server.ref, sidecar.pod, noun)
            held[sidecar.pod] = (sidecar.incarnation, MOUNTED)
            continue
        if noun and before == (sidecar.incarnation, want) and outcome.error is None:
            log.warning("%s: pod %s holds %s %s, not %s: delivering it again",
                        server.ref, sidecar.pod, noun, holds, want)  # fmt: skip
        if outcome.error is not None or recipient is None:
            failed.append((sidecar, outcome.error or f"it takes no {what}"))
            continue
        signing = next(keyring.candidates(sidecar.kid))
        try:
            token = seal(signing, recipient)
            response = await pusher.put(sidecar, port, path, token)
        except caught as exc:
            failed.append((sidecar, f"{what}: {exc}"))
            continue
        if response.status_code == 200:
            held[sidecar.pod] = (sidecar.incarnation, want)
        else:
            failed.append((sidecar, f"{what}: HTTP {response.status_code}: "
                                    f"{response.text[:200]}"))  # fmt: skip
    return failed


__all__ = ["MOUNTED", "Seal", "deliver_sealed", "recipient_of"]
