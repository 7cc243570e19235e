"""Bundles across releases: a v1 operator's bundle on this sidecar, this operator's bundle on a
v1 sidecar, and a bundle using a field the receiver does not know.

"v1" is real older code, not a simulation: ``v1/bundle.jws`` was signed by the code of commit
cd3fc64 (``make_v1.py``) and ``v1/schema.py`` is that commit's decoder, frozen.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
import orjson
import pytest

from remit.errors import BundleError, UnsupportedBundleError
from remit.gateway.state import PolicyState
from remit.policy.bundle import Bundle
from remit.policy.engine import Engine
from remit.policy.signing import generate_key, public_key, sign, verify
from tests.dataplane.compat.fixtures import compiled, documents, requests
from tests.dataplane.compat.support import (
    V1_KEY,
    outcomes,
    payload_of,
    sign_json,
    v1_summary,
    v1_text,
)
from tests.dataplane.compat.v1 import schema as v1
from tests.support.policies import NOW, bundle_for, grant, policy, rule, server

pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")


def _today() -> Bundle:
    """The fixture's resources compiled by today's compiler, as the operator would."""
    return compiled()


def _decisions(bundle: Bundle) -> dict[str, Any]:
    engine = Engine(bundle)
    return {name: engine.decide(request).document() for name, request in requests().items()}


def test_a_v1_operators_bundle_installs_here_and_decides_the_same() -> None:
    state = PolicyState(V1_KEY, server="agents/files", clock=NOW.timestamp)
    bundle, changed = state.install_signed(v1_text("bundle.jws"))
    assert changed
    assert bundle.digest == v1_summary()["digests"]["base"]
    assert bundle.content_digest() == bundle.digest  # recomputed over the wire form
    assert bundle.canonical() == payload_of(v1_text("bundle.jws"))  # nothing added or lost
    assert outcomes(_decisions(bundle)) == outcomes(v1_summary()["decisions"]["base"])


def test_this_operators_bundle_is_byte_for_byte_what_v1_wrote_and_v1_accepts_it() -> None:
    bundle = _today()
    key = generate_key()
    payload = payload_of(sign(bundle, key), public_key(key))
    assert payload == payload_of(v1_text("bundle.jws"))  # same inputs, same bytes as v1
    old = v1.parse_bundle(payload)  # v1: forbid_unknown_fields, digest with defaults
    assert old.digest == bundle.digest == v1_summary()["digests"]["base"]


def test_a_bundle_using_a_field_the_sidecar_does_not_know_is_refused_naming_it() -> None:
    key = generate_key()
    document = orjson.loads(_today().canonical())
    document["server"]["maxToolCallsPerMinute"] = 5  # what a later release might add
    token = sign_json(document, key)
    with pytest.raises(BundleError, match="unknown field `maxToolCallsPerMinute`"):
        v1.parse_bundle(payload_of(token, public_key(key)))  # v1 refuses, never ignores
    state = PolicyState(public_key(key), server="agents/files", clock=NOW.timestamp)
    held, _ = state.install_signed(sign(_today(), key))
    with pytest.raises(UnsupportedBundleError, match=r"field `server\.maxToolCallsPerMinute`"):
        state.install_signed(token)
    assert state.current is not None
    assert state.current.bundle is held  # the last good one stays


def test_a_value_the_sidecar_does_not_know_is_refused_as_unsupported() -> None:
    key = generate_key()
    document = orjson.loads(_today().canonical())
    document["server"]["toolPinning"] = "Strict"  # a new member of a closed set
    with pytest.raises(UnsupportedBundleError, match=r"`server\.toolPinning` to 'Strict'"):
        verify(sign_json(document, key), key)


def test_a_bundle_of_an_operator_older_than_the_contract_is_accepted_as_written() -> None:
    # Before format 1 a bundle had fewer fields (no evidence, no consentMaxSeconds, ...) and its
    # digest covered exactly those. Such an operator wrote what is below; its missing fields
    # are read as their defaults and the digest is checked over what it wrote.
    document = orjson.loads(payload_of(v1_text("bundle.jws")))
    for compiled_grant in document["grants"]:
        compiled_grant.pop("evidence")
    for compiled_policy in document["policies"]:
        for compiled_rule in compiled_policy["rules"]:
            compiled_rule.pop("consentMaxSeconds")
    content = {k: v for k, v in document.items() if k not in {"serial", "issuedAt", "digest"}}
    canonical = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    document["digest"] = hashlib.sha256(canonical).hexdigest()
    key = generate_key()
    bundle = verify(sign_json(document, key), key)
    assert bundle.digest == document["digest"]
    assert all(g.evidence is None for g in bundle.grants)
    document["grants"][0]["subject"] = "mallory@example.com"  # but never other content
    with pytest.raises(BundleError, match="digest does not match"):
        verify(sign_json(document, key), key)


def test_v1_and_this_code_agree_on_every_bundle_the_tests_compile() -> None:
    shapes = [
        bundle_for(policy("p", rule("r", tools=["t"]))),
        bundle_for(server(), policy("p", rule("r", tools=["t"], when="has(args.x)")), grant("g")),
        bundle_for(*documents(revoke_g2=True, add_g4=True)),
    ]
    for bundle in shapes:
        old = v1.parse_bundle(bundle.canonical())
        assert old.canonical() == bundle.canonical()
        assert old.content_digest() == bundle.content_digest()
        # every field v1 knows holds the same value; later fields are at their defaults, so
        # the wire form leaves them out
        assert msgspec.to_builtins(old) == bundle.document()
