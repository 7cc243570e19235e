"""Sign and verify bundles: compact JWS with EdDSA (Ed25519), keys as PEM or JWK.

The operator holds the private key (in a Secret); each sidecar has only the public key.
Verification accepts exactly one algorithm, EdDSA, with the configured key: a bad signature,
another key, another ``alg`` (``none``, HS256, ...) or a tampered payload all fail.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey
from joserfc.jws import JWSRegistry

from remit.errors import SignatureError, SigningKeyError
from remit.policy.bundle import Bundle, parse_bundle
from remit.policy.delta import BundleDelta, parse_delta

ALGORITHM = "EdDSA"
# RFC 9864 deprecates the polymorphic "EdDSA" name in favour of "Ed25519". Remit's wire format
# names EdDSA (as the architecture does); the curve is pinned to Ed25519 by the key type.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", module="joserfc")
# joserfc caps a compact JWS at about 128 kB by default; a bundle for a thousand policies or
# grants is megabytes. Accept up to the size the gateway's admin API accepts.
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
DELTA_TYPE = "remit-bundle-delta+jws"


def _registry() -> JWSRegistry:
    registry = JWSRegistry(algorithms=[ALGORITHM])
    registry.max_payload_length = MAX_BUNDLE_BYTES
    return registry


def generate_key() -> OKPKey:
    """A new Ed25519 key pair."""
    return OKPKey.generate_key("Ed25519", auto_kid=True)


def public_key(key: OKPKey) -> OKPKey:
    """The public half of ``key``."""
    return OKPKey.import_key(key.as_dict(private=False))


def save_key(key: OKPKey, path: Path, *, private: bool = True) -> None:
    """Write ``key`` as PEM (``.pem``) or JWK JSON (any other suffix); private files get 0600."""
    try:
        if path.suffix == ".pem":
            data = key.as_pem(private=private)
        else:
            data = json.dumps(key.as_dict(private=private), indent=2).encode() + b"\n"
        path.write_bytes(data)
        if private:
            path.chmod(0o600)
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot write key: {exc}") from exc


def load_key(source: Path | str | bytes) -> OKPKey:
    """Load an Ed25519 key from a PEM or JWK file path, or from PEM/JWK text or bytes."""
    data: bytes
    if isinstance(source, bytes):
        data, where = source, "key"
    elif str(source).lstrip().startswith(("{", "-----")):
        data, where = str(source).encode(), "key"
    else:
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SigningKeyError(f"{path}: cannot read key: {exc}") from exc
        where = str(path)
    try:
        if data.lstrip().startswith(b"{"):
            key = OKPKey.import_key(json.loads(data))
        else:
            key = OKPKey.import_key(data)
    except (ValueError, JoseError, TypeError) as exc:
        raise SigningKeyError(f"{where}: not an Ed25519 key in PEM or JWK form: {exc}") from exc
    if key.as_dict(private=False).get("crv") != "Ed25519":
        raise SigningKeyError(f"{where}: key curve must be Ed25519")
    return key


def sign(bundle: Bundle, key: OKPKey) -> str:
    """The bundle as a compact JWS signed with ``key``."""
    header: dict[str, Any] = {"alg": ALGORITHM, "typ": "remit-bundle+jws"}
    if key.kid:
        header["kid"] = key.kid
    try:
        return jws.serialize_compact(header, bundle.canonical(), key, registry=_registry())
    except JoseError as exc:
        raise SigningKeyError(f"cannot sign with this key: {exc}") from exc


def sign_delta(delta: BundleDelta, key: OKPKey) -> str:
    """A bundle delta as a compact JWS signed with ``key`` (its own ``typ``)."""
    header: dict[str, Any] = {"alg": ALGORITHM, "typ": DELTA_TYPE}
    if key.kid:
        header["kid"] = key.kid
    try:
        return jws.serialize_compact(header, delta.canonical(), key, registry=_registry())
    except JoseError as exc:
        raise SigningKeyError(f"cannot sign with this key: {exc}") from exc


def _verified(token: str | bytes, key: OKPKey, what: str) -> tuple[dict[str, Any], bytes]:
    try:
        value = token.decode("ascii") if isinstance(token, bytes) else token
        obj = jws.deserialize_compact(value.strip(), public_key(key), registry=_registry())
    except (JoseError, ValueError, UnicodeDecodeError) as exc:
        raise SignatureError(f"{what} signature does not verify: {exc}") from exc
    if obj.protected.get("alg") != ALGORITHM:
        raise SignatureError(f"{what} algorithm must be {ALGORITHM}")
    return dict(obj.protected), obj.payload


def verify(token: str | bytes, key: OKPKey) -> Bundle:
    """Verify a signed bundle with ``key`` and return it; raise ``SignatureError`` if not."""
    header, payload = _verified(token, key, "bundle")
    if header.get("typ") == DELTA_TYPE:
        raise SignatureError("this is a bundle delta, not a bundle")
    return parse_bundle(payload)


def verify_delta(token: str | bytes, key: OKPKey) -> BundleDelta:
    """Verify a signed bundle delta with ``key`` and return it; raise ``SignatureError`` if not."""
    header, payload = _verified(token, key, "bundle delta")
    if header.get("typ") != DELTA_TYPE:
        raise SignatureError(f"a bundle delta must have typ {DELTA_TYPE}")
    return parse_delta(payload)
