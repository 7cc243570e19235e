"""Bundle deltas: built from two compiles, applied only to their exact base, refused otherwise.

The sidecar side is ``PolicyState.install_delta`` with a real signing key and an injected clock;
the admin API's answers (409/422 with a reason) are in tests/operator/test_delta_push.py, which
pushes to a real sidecar process.
"""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest
from joserfc.jwk import OKPKey

from remit.errors import (
    BundleError,
    DeltaBaseError,
    DeltaDigestError,
    SignatureError,
    StaleBundleError,
    WrongServerError,
)
from remit.gateway.state import PolicyState
from remit.policy.bundle import Bundle, CompiledGrant
from remit.policy.delta import apply_delta, build_delta
from remit.policy.signing import generate_key, public_key, sign, sign_delta, verify
from tests.support.policies import NOW, bundle_for, grant, policy, rule

pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")

POLICY = policy("p", rule("r", tools=["t"]))


def _bundle(grants: list[str], serial: int, *, extra: list[dict] | None = None) -> Bundle:  # type: ignore[type-arg]
    docs = [POLICY, *(grant(name) for name in grants), *(extra or [])]
    built = bundle_for(*docs)
    return msgspec.structs.replace(built, serial=serial)


@pytest.fixture(scope="module")
def key() -> OKPKey:
    return generate_key()


def _state(key: OKPKey, base: Bundle, server: str = "agents/files") -> PolicyState:
    state = PolicyState(public_key(key), server=server, clock=NOW.timestamp)
    state.install_signed(sign(base, key))
    return state


def test_a_grant_change_is_a_delta_of_only_that_grant() -> None:
    base = _bundle([f"g{i}" for i in range(50)], 1)
    target = _bundle([f"g{i}" for i in range(1, 50)] + ["new"], 2)
    delta = build_delta(base, target)
    assert delta is not None
    assert delta.removed == ("agents/g0",)
    assert [g.id for g in delta.upserted] == ["agents/new"]
    assert (delta.base_serial, delta.base_digest) == (1, base.digest)
    assert (delta.serial, delta.digest) == (2, target.digest)
    assert apply_delta(base, delta) == target
    assert len(delta.canonical()) * 10 < len(target.canonical())


def test_a_policy_change_is_not_a_delta() -> None:
    base = _bundle(["g"], 1)
    target = _bundle(["g"], 2, extra=[policy("q", rule("r", tools=["u"]))])
    assert build_delta(base, target) is None


def test_a_signed_delta_installs_the_compiled_bundle(key: OKPKey) -> None:
    base, target = _bundle(["a", "b"], 1), _bundle(["b", "c"], 2)
    state = _state(key, base)
    delta = build_delta(base, target)
    assert delta is not None
    installed, changed = state.install_delta(sign_delta(delta, key))
    assert changed
    assert installed == target
    assert state.current is not None
    assert state.current.bundle.digest == target.digest


def test_a_delta_for_another_base_is_refused_and_the_bundle_stays(key: OKPKey) -> None:
    base, other, target = _bundle(["a"], 1), _bundle(["x"], 1), _bundle(["a", "b"], 2)
    state = _state(key, other)
    delta = build_delta(base, target)
    assert delta is not None
    with pytest.raises(DeltaBaseError, match="delta applies to serial 1"):
        state.install_delta(sign_delta(delta, key))
    assert state.current is not None
    assert state.current.bundle == other


def test_a_delta_with_no_bundle_in_force_is_refused(key: OKPKey) -> None:
    base, target = _bundle(["a"], 1), _bundle(["a", "b"], 2)
    state = PolicyState(public_key(key), server="agents/files", clock=NOW.timestamp)
    delta = build_delta(base, target)
    assert delta is not None
    with pytest.raises(DeltaBaseError, match="no bundle in force"):
        state.install_delta(sign_delta(delta, key))


def test_a_delta_whose_result_is_not_the_signed_digest_is_refused(key: OKPKey) -> None:
    base, target = _bundle(["a"], 1), _bundle(["a", "b"], 2)
    state = _state(key, base)
    delta = build_delta(base, target)
    assert delta is not None
    forged = msgspec.structs.replace(
        delta.upserted[0], tools=("*",)
    )  # signed by the key, but not what was compiled for that digest
    wrong = msgspec.structs.replace(delta, upserted=(forged,))
    with pytest.raises(DeltaDigestError, match="was signed for"):
        state.install_delta(sign_delta(wrong, key))
    assert state.current is not None
    assert state.current.bundle == base


def test_a_tampered_or_foreign_delta_fails_signature(key: OKPKey) -> None:
    base, target = _bundle(["a"], 1), _bundle(["a", "b"], 2)
    state = _state(key, base)
    delta = build_delta(base, target)
    assert delta is not None
    token = sign_delta(delta, key)
    header, payload, signature = token.split(".")
    flipped = ("A" if payload[5] != "A" else "B").join((payload[:5], payload[6:]))
    with pytest.raises(SignatureError):
        state.install_delta(f"{header}.{flipped}.{signature}")
    with pytest.raises(SignatureError):
        state.install_delta(sign_delta(delta, generate_key()))
    with pytest.raises(SignatureError, match="must have typ"):
        state.install_delta(sign(target, key))  # a full bundle is not a delta
    with pytest.raises(SignatureError, match="not a bundle"):
        verify(token, key)  # nor a delta a bundle
    assert state.current is not None
    assert state.current.bundle == base


def test_a_delta_for_another_server_is_refused(key: OKPKey) -> None:
    base, target = _bundle(["a"], 1), _bundle(["a", "b"], 2)
    state = _state(key, base)
    delta = build_delta(base, target)
    assert delta is not None
    foreign = msgspec.structs.replace(delta, server="agents/other")
    with pytest.raises(WrongServerError, match="agents/other"):
        state.install_delta(sign_delta(foreign, key))


def test_a_stale_delta_is_refused(key: OKPKey) -> None:
    base, target = _bundle(["a"], 1), _bundle(["a", "b"], 2)
    state = _state(key, base)
    delta = build_delta(base, target)
    assert delta is not None
    state.max_age = 60.0
    old = target.issued_at - timedelta(hours=1)
    later = msgspec.structs.replace(target, issued_at=old)
    stale = msgspec.structs.replace(delta, issued_at=old, digest=later.digest)
    with pytest.raises(StaleBundleError):
        state.install_delta(sign_delta(stale, key))
    assert state.current is not None
    assert state.current.bundle == base


def test_a_malformed_delta_is_refused(key: OKPKey) -> None:
    base = _bundle(["a"], 1)
    state = _state(key, base)
    delta = build_delta(base, _bundle(["a", "b"], 2))
    assert delta is not None
    twice = msgspec.structs.replace(delta, removed=("agents/nope",))
    with pytest.raises(BundleError, match="the base lacks"):
        state.install_delta(sign_delta(twice, key))
    grant_b: CompiledGrant = delta.upserted[0]
    dup = msgspec.structs.replace(delta, upserted=(grant_b, grant_b))
    with pytest.raises(BundleError, match="named twice"):
        state.install_delta(sign_delta(dup, key))
