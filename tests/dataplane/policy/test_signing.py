"""Signed bundles: JWS with EdDSA over Ed25519; anything else fails verification."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa, x25519
from joserfc import jws
from joserfc.jwk import OKPKey

from remit.errors import BundleError, SignatureError, SigningKeyError
from remit.policy.bundle import Bundle
from remit.policy.signing import generate_key, load_key, public_key, save_key, sign, verify
from tests.support.policies import bundle_for, grant, policy, rule

# joserfc warns that RFC 9864 deprecates the "EdDSA" name; Remit's wire format keeps it.
pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return bundle_for(policy("p", rule("r", tools=["t"], when="has(args.x)")), grant("g"))


@pytest.fixture(scope="module")
def key() -> OKPKey:
    return generate_key()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _parts(token: str) -> list[str]:
    return token.split(".")


def test_sign_then_verify_returns_the_bundle(bundle: Bundle, key: OKPKey) -> None:
    token = sign(bundle, key)
    header = json.loads(base64.urlsafe_b64decode(_parts(token)[0] + "=="))
    assert header["alg"] == "EdDSA"
    assert header["kid"] == key.kid
    assert verify(token, key) == bundle
    assert verify(token, public_key(key)) == bundle
    assert verify(token.encode() + b"\n", public_key(key)).digest == bundle.digest


def test_bad_signature_is_rejected(bundle: Bundle, key: OKPKey) -> None:
    header, payload, signature = _parts(sign(bundle, key))
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    with pytest.raises(SignatureError, match="does not verify"):
        verify(f"{header}.{payload}.{flipped}", key)
    with pytest.raises(SignatureError):
        verify(f"{header}.{payload}.", key)


def test_wrong_key_is_rejected(bundle: Bundle, key: OKPKey) -> None:
    with pytest.raises(SignatureError):
        verify(sign(bundle, key), generate_key())


def test_tampered_payload_is_rejected(bundle: Bundle, key: OKPKey) -> None:
    header, payload, signature = _parts(sign(bundle, key))
    document = json.loads(base64.urlsafe_b64decode(payload + "=="))
    document["grants"][0]["subject"] = "mallory@example.com"
    forged = _b64(json.dumps(document).encode())
    with pytest.raises(SignatureError):
        verify(f"{header}.{forged}.{signature}", key)


def test_validly_signed_bundle_with_a_wrong_digest_is_rejected(bundle: Bundle, key: OKPKey) -> None:
    forged = bundle.model_copy(update={"digest": "0" * 64})
    with pytest.raises(BundleError, match="digest does not match"):
        verify(sign(forged, key), key)


def test_alg_none_is_rejected(bundle: Bundle, key: OKPKey) -> None:
    header = _b64(json.dumps({"alg": "none"}).encode())
    payload = _b64(bundle.canonical())
    for token in (f"{header}.{payload}.", f"{header}.{payload}"):
        with pytest.raises(SignatureError):
            verify(token, key)


def test_hs256_with_the_public_key_as_secret_is_rejected(bundle: Bundle, key: OKPKey) -> None:
    # The classic confusion attack: HMAC keyed with the verifier's public key material.
    for secret in (public_key(key).as_pem(private=False), key.as_dict()["x"].encode()):
        signing_input = f"{_b64(json.dumps({'alg': 'HS256'}).encode())}.{_b64(bundle.canonical())}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        with pytest.raises(SignatureError):
            verify(f"{signing_input}.{_b64(mac)}", key)


def test_other_algorithm_names_are_rejected_even_with_the_right_key(
    bundle: Bundle, key: OKPKey
) -> None:
    token = jws.serialize_compact(
        {"alg": "Ed25519"}, bundle.canonical(), key, algorithms=["Ed25519"]
    )
    with pytest.raises(SignatureError):
        verify(token, key)


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "é.é.é", b"\xff\xfe"])
def test_garbage_tokens_are_rejected(token: str | bytes, key: OKPKey) -> None:
    with pytest.raises(SignatureError):
        verify(token, key)


@pytest.mark.parametrize("suffix", [".pem", ".jwk", ".json"])
def test_save_and_load_round_trip(tmp_path: Path, key: OKPKey, suffix: str) -> None:
    private_path = tmp_path / f"signing{suffix}"
    public_path = tmp_path / f"verify{suffix}"
    save_key(key, private_path)
    save_key(key, public_path, private=False)
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    loaded_private = load_key(private_path)
    loaded_public = load_key(str(public_path))
    assert loaded_private.as_dict(private=True)["d"] == key.as_dict(private=True)["d"]
    assert "d" not in loaded_public.as_dict(private=False)
    if suffix == ".pem":
        assert private_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
        assert b"PRIVATE" not in public_path.read_bytes()
    else:
        assert "d" not in json.loads(public_path.read_text())
    assert load_key(public_path.read_bytes()).thumbprint() == key.thumbprint()
    assert load_key(public_path.read_text()).thumbprint() == key.thumbprint()


def test_keys_saved_and_loaded_sign_and_verify(tmp_path: Path, bundle: Bundle) -> None:
    signer = generate_key()
    save_key(signer, tmp_path / "k.pem")
    save_key(signer, tmp_path / "k.pub.jwk", private=False)
    token = sign(bundle, load_key(tmp_path / "k.pem"))
    assert verify(token, load_key(tmp_path / "k.pub.jwk")).digest == bundle.digest


def test_signing_needs_the_private_key(bundle: Bundle, key: OKPKey) -> None:
    with pytest.raises(SigningKeyError, match="cannot sign"):
        sign(bundle, public_key(key))


def test_load_key_rejects_what_is_not_an_ed25519_key(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="cannot read key"):
        load_key(tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_text("-----BEGIN PRIVATE KEY-----\nnope\n")
    with pytest.raises(SigningKeyError, match="not an Ed25519 key"):
        load_key(tmp_path / "junk.pem")
    with pytest.raises(SigningKeyError, match="not an Ed25519 key"):
        load_key(b'{"kty": "OKP"}')
    rsa_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(SigningKeyError):
        load_key(rsa_pem)
    x_pem = x25519.X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(SigningKeyError):
        load_key(x_pem)


def test_save_key_to_an_unwritable_place_is_a_key_error(tmp_path: Path, key: OKPKey) -> None:
    with pytest.raises(SigningKeyError, match="cannot write key"):
        save_key(key, tmp_path / "no" / "such" / "dir" / "k.pem")


def test_large_bundles_sign_and_verify(key: OKPKey) -> None:
    # joserfc's default cap is about 128 kB; real bundles for many policies are far larger.
    many = [
        policy(f"p{i}", rule("r", tools=[f"tool_{i}_*"], when="has(args.x)")) for i in range(800)
    ]
    big = bundle_for(*many)
    assert len(big.canonical()) > 200_000
    assert verify(sign(big, key), key).digest == big.digest
