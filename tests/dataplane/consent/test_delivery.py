"""The consent delivery a sidecar accepts: signed by the bundle key, encrypted to this
process, for this server, fresh; anything else is refused saying why."""

from __future__ import annotations

import base64

import pytest
from joserfc import jws
from joserfc.jws import JWSRegistry

from remit.errors import ConsentRequestError
from remit.gateway.consentinbox import ConsentInbox
from remit.policy.consentdelivery import MAX_AGE, Recipient, holding, seal_delivery
from remit.policy.consentrequest import key_id
from remit.policy.signing import generate_key, public_key

NOW = 1_800_000_000.0
KEY = bytes(range(32))
URL = "https://consent.example"


def test_the_sidecar_it_was_made_for_opens_it() -> None:
    signing, sidecar = generate_key(), Recipient()
    token = seal_delivery(signing, sidecar.public(), "agents/files", URL, KEY, NOW)
    delivery = sidecar.open(token, public_key(signing), "agents/files", NOW + 1)
    assert (delivery.url, delivery.key) == (URL, KEY)
    assert base64.b64encode(KEY).decode() not in token.decode()  # encrypted
    assert URL not in token.decode()
    assert holding(URL, KEY) != holding(URL, bytes(32))


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ("other_signer", "signature does not verify"),
        ("other_sidecar", "does not open"),
        ("other_server", "is for 'agents/other'"),
        ("stale", "stale"),
    ],
)
def test_anything_else_is_refused(change: str, why: str) -> None:
    signing, sidecar = generate_key(), Recipient()
    signer = generate_key() if change == "other_signer" else signing
    to = Recipient() if change == "other_sidecar" else sidecar
    server = "agents/other" if change == "other_server" else "agents/files"
    when = NOW - MAX_AGE - 1 if change == "stale" else NOW
    token = seal_delivery(signer, to.public(), server, URL, KEY, when)
    with pytest.raises(ConsentRequestError, match=why):
        sidecar.open(token, public_key(signing), "agents/files", NOW)


def test_a_bundle_signature_is_not_a_delivery() -> None:
    signing, sidecar = generate_key(), Recipient()
    header = {"alg": "EdDSA", "typ": "remit-bundle+jws"}
    registry = JWSRegistry(algorithms=["EdDSA"])
    other = jws.serialize_compact(header, b"{}", signing, registry=registry)
    with pytest.raises(ConsentRequestError, match="not a consent delivery"):
        sidecar.open(other.encode(), public_key(signing), "agents/files", NOW)


def test_a_replayed_earlier_consent_delivery_cannot_undo_a_rotation() -> None:
    signing, now = generate_key(), [NOW]
    inbox = ConsentInbox(public_key(signing), "agents/files", 600, lambda links: None,
                         clock=lambda: now[0])  # fmt: skip
    new = bytes(range(1, 33))
    captured = seal_delivery(signing, inbox.recipient.public(), "agents/files", URL, KEY, now[0])
    assert inbox.receive(captured) == {"holds": holding(URL, KEY)}
    assert inbox.receive(captured) == {"holds": holding(URL, KEY)}  # the same again: no-op
    now[0] += 120
    rotated = seal_delivery(signing, inbox.recipient.public(), "agents/files", URL, new, now[0])
    inbox.receive(rotated)
    with pytest.raises(ConsentRequestError, match="replay of an earlier delivery"):
        inbox.receive(captured)
    assert inbox.holds == holding(URL, new)
    assert inbox.links is not None
    assert inbox.links.sealer.kid == key_id(new)
