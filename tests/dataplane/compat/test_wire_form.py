"""The wire form's rules, on fields treated as added after format 1: left out exactly when they
equal their default by value (never by identity), named when written, and required to have a
default. Also: the format-1 table is the v1 decoder's field set, no more, no less."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
import pytest

from remit.policy.bundle import (
    Bundle,
    CompiledGrant,
    Frozen,
    GatewayLimits,
    GroupClaim,
    canonical_json,
    parse_bundle,
)
from remit.policy.wire import FORMAT_1, WireForm
from tests.dataplane.compat.fixtures import documents
from tests.dataplane.compat.v1 import schema as v1
from tests.support.policies import bundle_for

LATER = {  # fields this test treats as added after format 1
    "ServerSettings": {"groupClaims", "limits", "allowedOrigins"},
    "CompiledGrant": {"evidence", "when"},
    "CompiledRule": {"annotations"},
}


def _baseline(later: Mapping[str, set[str]]) -> dict[str, frozenset[str]]:
    return {name: fields - frozenset(later.get(name, ())) for name, fields in FORMAT_1.items()}


FORM = WireForm(Bundle, _baseline(LATER))


def test_later_fields_at_their_default_are_left_out_compared_by_value() -> None:
    plain = bundle_for(*documents())
    plain = plain.model_copy(
        update={
            "server": plain.server.model_copy(
                update={
                    # equal to the defaults, but other objects (as a decoder makes them)
                    "group_claims": (GroupClaim(claim="".join(["gro", "ups"])),),
                    "limits": GatewayLimits(max_response_bytes=8 * 1024 * 1024 + 0),
                    "allowed_origins": (),
                }
            ),
            "grants": tuple(g.model_copy(update={"evidence": None}) for g in plain.grants),
        }
    )
    used: set[str] = set()
    document = FORM.document(plain, used)
    assert {"groupClaims", "limits", "allowedOrigins"}.isdisjoint(document["server"])
    assert all("evidence" not in g and "when" not in g for g in document["grants"])
    assert all(
        "annotations" not in r
        for p in document["policies"]
        for r in p["rules"]
        if not r.get("annotations")
    )
    assert used == {"CompiledRule.annotations"}  # the read rule's readOnlyHint is not default
    # Left out means "the default": reading the form back gives the same bundle.
    assert msgspec.json.decode(canonical_json(document), type=Bundle) == plain


def test_later_fields_that_differ_from_their_default_are_written_and_named() -> None:
    bundle = bundle_for(*documents())
    used: set[str] = set()
    document = FORM.document(bundle, used)
    assert document["server"]["groupClaims"][1] == {"claim": "realm_access.roles", "prefix": "kc:"}
    assert list(document["server"]["allowedOrigins"]) == ["https://app.example.com"]
    assert "evidence" in document["grants"][0]
    assert used == {
        "ServerSettings.groupClaims",
        "ServerSettings.limits",
        "ServerSettings.allowedOrigins",
        "CompiledGrant.evidence",
        "CompiledRule.annotations",
    }


def test_msgspec_omit_defaults_would_keep_a_decoded_default() -> None:
    # Why the wire form compares by value: msgspec compares this default by identity.
    class Omitting(msgspec.Struct, omit_defaults=True):
        claims: tuple[GroupClaim, ...] = (GroupClaim(claim="groups"),)

    decoded = msgspec.json.decode(b'{"claims":[{"claim":"groups","prefix":""}]}', type=Omitting)
    assert decoded == Omitting()
    assert msgspec.json.encode(decoded) != msgspec.json.encode(Omitting())

    class Wired(Frozen, frozen=True, kw_only=True):
        claims: tuple[GroupClaim, ...] = (GroupClaim(claim="groups"),)

    wired = msgspec.json.decode(b'{"claims":[{"claim":"groups","prefix":""}]}', type=Wired)
    assert WireForm(Wired, {"Wired": frozenset()}).document(wired) == {}


def test_a_later_field_without_a_default_is_refused_when_the_form_is_built() -> None:
    class Later(Frozen, frozen=True, kw_only=True):
        name: str
        added: int

    with pytest.raises(TypeError, match=r"Later\.added was added after bundle format 1"):
        WireForm(Later, {"Later": frozenset({"name"})})


def test_format_1_is_exactly_the_v1_decoders_fields() -> None:
    structs = [v1.Bundle, v1.ServerSettings, v1.GatewayLimits, v1.GroupClaim, v1.CompiledPolicy]
    structs += [v1.CompiledRule, v1.CompiledRateLimit, v1.CompiledGrant, v1.GrantEvidence]
    structs += [v1.ExcludedGrants, v1.BundleDelta]
    frozen = {
        c.__name__: frozenset(f.encode_name for f in msgspec.structs.fields(c)) for c in structs
    }
    assert frozen == dict(FORMAT_1)


def test_a_bundle_using_a_later_field_digests_and_parses_in_its_own_form() -> None:
    bundle = bundle_for(*documents())
    assert parse_bundle(bundle.canonical()) == bundle
    assert CompiledGrant.__name__ in FORMAT_1
