"""Reading the frozen v1 fixtures, and signing JSON that no Remit release would write."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from joserfc import jws
from joserfc.jwk import OKPKey
from joserfc.jws import JWSRegistry

from remit.policy.signing import DELTA_TYPE, load_key

V1 = Path(__file__).parent / "v1"
V1_KEY = load_key((V1 / "key.jwk").read_text())


def v1_text(name: str) -> str:
    """A v1 fixture file's text, without its trailing newline."""
    return (V1 / name).read_text().strip()


def v1_summary() -> dict[str, Any]:
    """The digests and decisions the v1 code recorded (``v1/decisions.json``)."""
    summary: dict[str, Any] = json.loads((V1 / "decisions.json").read_text())
    return summary


def outcomes(decisions: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What a decision decided (effect, reason, rules, grant, bundle), without its wording,
    which a later release may improve."""
    return {name: {k: v for k, v in d.items() if k != "message"} for name, d in decisions.items()}


def payload_of(token: str, key: OKPKey = V1_KEY) -> bytes:
    """The payload of a compact JWS, its signature checked with ``key`` (what a v1 sidecar
    does before it decodes)."""
    registry = JWSRegistry(algorithms=["EdDSA"])
    registry.max_payload_length = 64 * 1024 * 1024
    return jws.deserialize_compact(token, key, registry=registry).payload


def sign_json(document: dict[str, Any], key: OKPKey, *, delta: bool = False) -> str:
    """``document`` as canonical JSON, signed as the operator signs bundles (or deltas): for
    bundles a future release would write, with fields no current code knows."""
    header = {"alg": "EdDSA", "typ": DELTA_TYPE if delta else "remit-bundle+jws"}
    payload = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    registry = JWSRegistry(algorithms=["EdDSA"])
    registry.max_payload_length = 64 * 1024 * 1024
    return jws.serialize_compact(header, payload, key, registry=registry)
