"""Bundle deltas across releases: a v1 operator's delta applied here, this operator's delta
applied by the v1 decoder, and a delta carrying a field the sidecar does not know."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from remit.errors import BundleError, UnsupportedBundleError
from remit.gateway.state import PolicyState
from remit.policy.delta import build_delta
from remit.policy.engine import Engine
from remit.policy.signing import generate_key, public_key, sign, sign_delta
from tests.dataplane.compat.fixtures import SERIAL, compiled, requests
from tests.dataplane.compat.support import (
    V1_KEY,
    outcomes,
    payload_of,
    sign_json,
    v1_summary,
    v1_text,
)
from tests.dataplane.compat.v1 import schema as v1
from tests.support.policies import NOW

pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
CHANGE = {"revoke_g2": True, "add_g4": True}  # the grant change make_v1 signed as a delta


def test_a_v1_operators_delta_applies_here_and_decides_the_same() -> None:
    state = PolicyState(V1_KEY, server="agents/files", clock=NOW.timestamp)
    state.install_signed(v1_text("bundle.jws"))
    bundle, changed = state.install_delta(v1_text("delta.jws"))
    assert changed
    assert (bundle.serial, bundle.digest) == (SERIAL + 1, v1_summary()["digests"]["delta"])
    engine = Engine(bundle)
    decided = {name: engine.decide(request).document() for name, request in requests().items()}
    assert outcomes(decided) == outcomes(v1_summary()["decisions"]["delta"])


def test_this_operators_delta_is_what_v1_wrote_and_the_v1_decoder_applies_it() -> None:
    base, target = compiled(), compiled(SERIAL + 1, **CHANGE)
    delta = build_delta(base, target)
    assert delta is not None
    key = generate_key()
    payload = payload_of(sign_delta(delta, key), public_key(key))
    assert payload == payload_of(v1_text("delta.jws"))
    old_base = v1.parse_bundle(payload_of(sign(base, key), public_key(key)))
    result = v1.apply_delta(old_base, v1.parse_delta(payload))
    assert result.digest == target.digest == v1_summary()["digests"]["delta"]


def _delta_document() -> dict[str, Any]:
    delta = build_delta(compiled(), compiled(SERIAL + 1, **CHANGE))
    assert delta is not None
    document: dict[str, Any] = orjson.loads(delta.canonical())
    return document


def test_a_delta_with_a_field_the_sidecar_does_not_know_is_refused_naming_it() -> None:
    key = generate_key()
    document = _delta_document()
    document["upserted"][0]["maxCalls"] = 3  # a grant field of a later release
    token = sign_json(document, key, delta=True)
    with pytest.raises(BundleError, match="unknown field `maxCalls`"):
        v1.parse_delta(payload_of(token, public_key(key)))
    state = PolicyState(public_key(key), server="agents/files", clock=NOW.timestamp)
    held, _ = state.install_signed(sign(compiled(), key))
    with pytest.raises(UnsupportedBundleError, match=r"field `upserted\[0\]\.maxCalls`"):
        state.install_delta(token)
    assert state.current is not None
    assert state.current.bundle is held
