"""Bundle deltas: a grant change sent as the change, not as the whole bundle.

A bundle of 10,000 grants is megabytes; granting or revoking one grant changes a few hundred
bytes of it. The operator therefore sends a sidecar that already holds bundle ``base`` a signed
``PolicyBundleDelta`` instead: the grants removed (by id) and the grants added or changed, plus
the few bundle fields a grant change moves (``excludedGrants``, ``nextExpiry``), the new
``serial`` and ``issuedAt``, and the content ``digest`` of the resulting bundle.

A delta names exactly one base, by serial and digest, and the sidecar applies it only to that
bundle. The result is a complete bundle whose digest must equal the signed one, so a sidecar
installs exactly the bundle the operator compiled, or nothing. Anything but a grant change
(server settings, policies, tool pins) is not expressed as a delta: the operator sends the full
bundle, which is also the fallback whenever a delta is refused or the sidecar predates deltas.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from remit.errors import BundleError, DeltaBaseError, DeltaDigestError
from remit.policy.bundle import (
    Bundle,
    CompiledGrant,
    ExcludedGrants,
    Frozen,
    canonical_json,
)
from remit.policy.wire import FORMAT_1, WireForm, decode_error

DELTA_KIND = "PolicyBundleDelta"
DELTA_MEDIA_TYPE = "application/remit-bundle-delta+jws"


class BundleDelta(Frozen, frozen=True, kw_only=True):
    """The grants that changed between bundle ``base`` and the bundle it yields."""

    api_version: Literal["remit.dev/v1alpha1"] = "remit.dev/v1alpha1"
    kind: Literal["PolicyBundleDelta"] = "PolicyBundleDelta"
    server: str  # namespace/name, as the gateway knows its own server
    base_serial: Annotated[int, msgspec.Meta(ge=0)]
    base_digest: str
    serial: Annotated[int, msgspec.Meta(ge=0)]
    issued_at: Annotated[datetime, msgspec.Meta(tz=True)]
    digest: str
    removed: tuple[str, ...] = ()
    upserted: tuple[CompiledGrant, ...] = ()
    excluded_grants: ExcludedGrants
    next_expiry: Annotated[datetime, msgspec.Meta(tz=True)] | None = None

    def canonical(self) -> bytes:
        """Canonical JSON of the delta's wire form (what is signed; ``remit.policy.wire``)."""
        return canonical_json(DELTA_WIRE.document(self))


def server_ref(bundle: Bundle) -> str:
    """``namespace/name`` of the server a bundle is for."""
    return f"{bundle.server.namespace}/{bundle.server.name}"


def build_delta(base: Bundle, target: Bundle) -> BundleDelta | None:
    """The delta that turns ``base`` into ``target``; ``None`` when more than grants changed.

    Both bundles must be sealed (digest set) and ``target`` signed-ready (serial, issuedAt).
    """
    if (
        base.server != target.server
        or base.policies != target.policies
        or base.tool_pins != target.tool_pins
        or base.api_version != target.api_version
    ):
        return None
    before = {g.id: g for g in base.grants}
    after = {g.id for g in target.grants}
    return BundleDelta(
        server=server_ref(target),
        base_serial=base.serial,
        base_digest=base.digest,
        serial=target.serial,
        issued_at=target.issued_at,
        digest=target.digest,
        removed=tuple(sorted(gid for gid in before if gid not in after)),
        upserted=tuple(g for g in target.grants if before.get(g.id) != g),
        excluded_grants=target.excluded_grants,
        next_expiry=target.next_expiry,
    )


def apply_delta(base: Bundle, delta: BundleDelta) -> Bundle:
    """The bundle ``delta`` yields from ``base``, its digest checked against the signed one.

    Raises ``DeltaBaseError`` if ``base`` is not the bundle the delta names, ``BundleError`` if
    the delta removes a grant the base lacks or names a grant twice, and ``DeltaDigestError``
    if the result is not the bundle the operator signed.
    """
    if base.serial != delta.base_serial or base.digest != delta.base_digest:
        raise DeltaBaseError(
            f"delta applies to serial {delta.base_serial} (digest {delta.base_digest[:12]}), "
            f"but serial {base.serial} (digest {base.digest[:12]}) is in force"
        )
    grants = {g.id: g for g in base.grants}
    for gid in delta.removed:
        if grants.pop(gid, None) is None:
            raise BundleError(f"malformed delta: removes grant {gid!r}, which the base lacks")
    upserted = {g.id for g in delta.upserted}
    if len(upserted) != len(delta.upserted) or upserted & set(delta.removed):
        raise BundleError("malformed delta: a grant is named twice")
    for grant in delta.upserted:
        grants[grant.id] = grant
    result = msgspec.structs.replace(
        base,
        grants=tuple(grants[gid] for gid in sorted(grants)),
        excluded_grants=delta.excluded_grants,
        next_expiry=delta.next_expiry,
        serial=delta.serial,
        issued_at=delta.issued_at,
        digest="",
    ).sealed()
    if result.digest != delta.digest:
        raise DeltaDigestError(
            f"delta yields digest {result.digest[:12]}, but it was signed for {delta.digest[:12]}"
        )
    return result


def parse_delta(payload: bytes) -> BundleDelta:
    """Parse a delta's JSON; unknown fields and wrong types are refused."""
    try:
        return _DECODER.decode(payload)
    except msgspec.DecodeError as exc:
        raise decode_error(exc, "bundle delta") from exc


_DECODER = msgspec.json.Decoder(BundleDelta)
DELTA_WIRE = WireForm(BundleDelta, FORMAT_1)
