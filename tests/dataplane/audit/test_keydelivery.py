"""The digest key delivery a sidecar accepts: signed by the bundle key, encrypted to this
process, for this server, fresh, long enough; anything else is refused saying why. And each
server's key is derived from the operator's root so that one server's key reveals no other."""

from __future__ import annotations

import base64
import re

import pytest

from remit.audit.anchors import MIN_KEY_BYTES
from remit.audit.arguments import key_id
from remit.audit.keydelivery import TYPE, open_key, seal_key, server_key
from remit.errors import AuditError
from remit.gateway.auditkey import AuditKeyInbox
from remit.policy.consentdelivery import MAX_AGE, Recipient, seal_body, seal_delivery
from remit.policy.signing import generate_key, public_key

NOW = 1_800_000_000.0
ROOT = b"r" * 44
KEY = server_key(ROOT, "agents/files")


def test_the_sidecar_it_was_made_for_opens_it_and_nobody_can_read_it_on_the_way() -> None:
    signing, sidecar = generate_key(), Recipient()
    token = seal_key(signing, sidecar.public(), "agents/files", KEY, NOW)
    assert open_key(sidecar, token, public_key(signing), "agents/files", NOW + 1) == KEY
    assert KEY.decode() not in token.decode()
    assert base64.b64encode(KEY).decode() not in token.decode()


def test_each_server_has_its_own_key_derived_from_the_root() -> None:
    assert len(KEY) >= MIN_KEY_BYTES
    assert server_key(ROOT, "agents/files") == KEY  # the same on every operator replica
    assert server_key(ROOT, "agents/other") != KEY
    assert server_key(b"s" * 44, "agents/files") != KEY  # a new root: a new key (rotation)
    assert ROOT not in KEY
    assert key_id(server_key(b"s" * 44, "agents/files")) != key_id(KEY)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ("other_signer", "signature does not verify"),
        ("other_sidecar", "does not open"),
        ("other_server", "is for 'agents/other'"),
        ("stale", "stale"),
        ("future", "from the future"),
        ("short_key", f"must be {MIN_KEY_BYTES}"),
        ("tampered", "signature does not verify"),
    ],
)
def test_anything_else_is_refused(change: str, why: str) -> None:
    signing, sidecar = generate_key(), Recipient()
    signer = generate_key() if change == "other_signer" else signing
    to = Recipient() if change == "other_sidecar" else sidecar
    server = "agents/other" if change == "other_server" else "agents/files"
    when = {"stale": NOW - MAX_AGE - 1, "future": NOW + MAX_AGE + 1}.get(change, NOW)
    key = b"k" * (MIN_KEY_BYTES - 1) if change == "short_key" else KEY
    token = seal_key(signer, to.public(), server, key, when)
    if change == "tampered":  # one byte of the encrypted payload changed
        header, payload, signature = token.split(b".")
        flipped = payload[:10] + (b"A" if payload[10:11] != b"A" else b"B") + payload[11:]
        token = b".".join((header, flipped, signature))
    with pytest.raises(AuditError, match=why):
        open_key(sidecar, token, public_key(signing), "agents/files", NOW)


def test_a_consent_delivery_is_not_a_key_delivery_nor_the_reverse() -> None:
    signing, sidecar = generate_key(), Recipient()
    consent = seal_delivery(signing, sidecar.public(), "agents/files", "https://c", KEY[:32], NOW)
    with pytest.raises(
        AuditError, match=re.escape(f"not a digest key delivery (typ must be {TYPE})")
    ):
        open_key(sidecar, consent, public_key(signing), "agents/files", NOW)
    key = seal_key(signing, sidecar.public(), "agents/files", KEY, NOW)
    with pytest.raises(Exception, match="not a consent delivery"):
        sidecar.open(key, public_key(signing), "agents/files", NOW)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (["not", "an", "object"], "not an object"),
        ({"server": "agents/files", "key": "x", "iat": True}, "no issue time"),
        ({"server": "agents/files", "key": "%%%", "iat": NOW}, "not base64"),
        ({"server": "agents/files", "iat": NOW}, "must be"),
    ],
)
def test_a_malformed_body_is_refused_by_name(body: object, why: str) -> None:
    signing, sidecar = generate_key(), Recipient()
    token = seal_body(signing, sidecar.public(), body, TYPE, "digest key delivery")  # type: ignore[arg-type]
    with pytest.raises(AuditError, match=why):
        open_key(sidecar, token, public_key(signing), "agents/files", NOW)


async def test_a_replayed_earlier_delivery_cannot_roll_a_rotation_back() -> None:
    signing, now = generate_key(), [NOW]
    installed: list[bytes] = []
    inbox = AuditKeyInbox(public_key(signing), "agents/files", installed.append, lambda: now[0])
    new = server_key(b"n" * 44, "agents/files")
    captured = seal_key(signing, inbox.recipient.public(), "agents/files", KEY, now[0])
    assert inbox.receive(captured) == {"holds": key_id(KEY)}
    assert inbox.receive(captured) == {"holds": key_id(KEY)}  # the same again: a no-op
    assert installed == [KEY]
    now[0] += 120  # the root is rotated; the captured delivery is still fresh (MAX_AGE)
    inbox.receive(seal_key(signing, inbox.recipient.public(), "agents/files", new, now[0]))
    now[0] += 60
    with pytest.raises(AuditError, match="not after the one installed"):
        inbox.receive(captured)
    # Another key at the very instant of the held delivery is no replay of it: refused too.
    same_time = seal_key(signing, inbox.recipient.public(), "agents/files", KEY, now[0] - 60)
    with pytest.raises(AuditError, match="not after the one installed"):
        inbox.receive(same_time)
    assert inbox.status()["holds"] == key_id(new)
    assert installed == [KEY, new]
    # Over the admin port: answered 400 and counted.
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": captured, "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await inbox.put(receive, send)
    assert sent[0]["status"] == 400
    assert inbox.status()["refused"] == 1
    assert b"replay of an earlier delivery" in sent[1]["body"]  # type: ignore[operator]
