"""The wire form of bundles and deltas across versions: what is written, digested and refused.

Operators and sidecars are upgraded independently, so a bundle signed by one release must mean
the same to the next one and to the previous one. The contract (docs/architecture.md,
"Compatibility across versions"):

- Format 1 is the set of fields bundles had when the contract began (:data:`FORMAT_1`). Those
  fields are always written, defaults included, exactly as format-1 code writes them.
- A field added later must have a default meaning "feature not used", and is written only when
  its value differs from that default, compared by value, recursively (``==`` on the JSON form,
  never msgspec's ``omit_defaults``, which compares most defaults by identity). A bundle that
  uses no later feature is therefore byte-for-byte what format-1 code writes, and its digest
  is the one a format-1 sidecar recomputes.
- The same form is signed and digested, on the operator and on the sidecar: the digest is
  sha256 over it, so a newer sidecar recomputes an older operator's digest exactly.
- A field a sidecar does not know (or a value of a closed set it does not know) is never
  ignored: the bundle is refused as ``unsupported`` (:func:`decode_error`), the bundle in force
  stays, and the refusal is counted, shown in ``/v1/status`` and reported to the operator.

:class:`WireForm` computes the form for one root struct type: ``msgspec.to_builtins`` (in C),
then only the later fields are looked at, so a bundle of format-1 fields costs nothing extra.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec

from remit.errors import BundleError, UnsupportedBundleError

#: The wire names of every field of format 1 (commit cd3fc64), per struct. A field of a listed
#: struct that is not listed here came later: it must have a default, and is written only when
#: it differs. A struct not listed at all is new since format 1 and reachable only through a
#: later field, so all of its fields are written; once a release has shipped it, list its
#: fields here before adding any.
FORMAT_1: Mapping[str, frozenset[str]] = {
    "Bundle": frozenset(
        {"apiVersion", "kind", "server", "policies", "grants", "excludedGrants", "toolPins"}
        | {"nextExpiry", "serial", "issuedAt", "digest"}
    ),
    "ServerSettings": frozenset(
        {"name", "namespace", "uid", "upstreamPort", "upstreamPath", "port", "adminPort"}
        | {"issuer", "audience", "jwksUri", "requiredScopes", "groupClaims", "jwksCacheSeconds"}
        | {"jwksMinRefreshSeconds", "toolPinning", "auditFailurePolicy", "auditArguments"}
        | {"maxBodyBytes", "limits", "allowedHosts", "allowedOrigins"}
    ),
    "GatewayLimits": frozenset({"maxResponseBytes", "responseReadTimeoutSeconds", "maxJsonDepth"}),
    "GroupClaim": frozenset({"claim", "prefix"}),
    "CompiledPolicy": frozenset(
        {"id", "uid", "resourceVersion", "agents", "users", "groups", "rules"}
    ),
    "CompiledRule": frozenset(
        {"id", "effect", "target", "patterns", "annotations", "requireConsent", "when"}
        | {"rateLimit", "consentMaxSeconds"}
    ),
    "CompiledRateLimit": frozenset({"calls", "perSeconds"}),
    "CompiledGrant": frozenset(
        {"id", "uid", "resourceVersion", "subject", "agent", "tools", "resources", "prompts"}
        | {"when", "expiresAt", "grantedBy", "reason", "evidence"}
    ),
    "GrantEvidence": frozenset({"method", "issuer", "subject", "consentedAt", "request", "scope"}),
    "ExcludedGrants": frozenset({"expired", "revoked"}),
    "BundleDelta": frozenset(
        {"apiVersion", "kind", "server", "baseSerial", "baseDigest", "serial", "issuedAt"}
        | {"digest", "removed", "upserted", "excludedGrants", "nextExpiry"}
    ),
}

Walk = Callable[[Any, set[str] | None], None]
"""Drops later fields at their defaults from a JSON value in place; names the ones kept."""


class WireForm:
    """The canonical JSON-ready form of one root struct type (and every struct inside it)."""

    def __init__(self, root: type[msgspec.Struct], baseline: Mapping[str, frozenset[str]]) -> None:
        self.baseline = baseline
        self._walks: dict[type[Any], Walk | None] = {}
        self._building: set[type[Any]] = set()
        self._added: list[str] = []
        self._root = self._struct(root)
        self.added = tuple(sorted(self._added))  # "Struct.field" of every later field

    def document(self, value: msgspec.Struct, used: set[str] | None = None) -> dict[str, Any]:
        """``value`` as JSON-ready builtins: later fields at their default left out. ``used``,
        if given, collects ``Struct.field`` of every later field that is written."""
        document: dict[str, Any] = msgspec.to_builtins(value)
        if self._root is not None:
            self._root(document, used)
        return document

    def used(self, value: msgspec.Struct) -> frozenset[str]:
        """``Struct.field`` of every later field ``value`` writes (differs from its default):
        the features a receiver must know to accept it, named as sidecars advertise them
        (``bundleFields``, :func:`later_fields`). Empty for a bundle any format-1 sidecar reads."""
        found: set[str] = set()
        self.document(value, found)
        return frozenset(found)

    def _struct(self, cls: type[msgspec.Struct]) -> Walk | None:
        if cls in self._walks:
            if cls in self._building:
                raise TypeError(f"{cls.__name__} contains itself: it has no wire plan")
            return self._walks[cls]
        self._walks[cls] = None
        self._building.add(cls)
        known = self.baseline.get(cls.__name__)
        if known is None:  # a struct new since format 1: only reachable through a later field
            known = frozenset(f.encode_name for f in msgspec.structs.fields(cls))
        drops: list[tuple[str, str, Any]] = []
        nested: list[tuple[str, Walk]] = []
        info = msgspec.inspect.type_info(cls)
        assert isinstance(info, msgspec.inspect.StructType)
        for field in info.fields:
            inner = self._type(field.type)
            if inner is not None:
                nested.append((field.encode_name, inner))
            if field.encode_name in known:
                continue
            if field.required:
                raise TypeError(
                    f"{cls.__name__}.{field.name} was added after bundle format 1 without a "
                    "default: bundles of older operators, which lack it, could not be read"
                )
            default = field.default
            if default is msgspec.NODEFAULT:
                default = field.default_factory()
            canonical = msgspec.to_builtins(default)
            if inner is not None:
                inner(canonical, None)
            drops.append((field.encode_name, f"{cls.__name__}.{field.encode_name}", canonical))
            self._added.append(f"{cls.__name__}.{field.encode_name}")
        walk = _struct_walk(tuple(nested), tuple(drops)) if nested or drops else None
        self._walks[cls] = walk
        self._building.discard(cls)
        return walk

    def _type(self, kind: msgspec.inspect.Type) -> Walk | None:
        if isinstance(kind, msgspec.inspect.StructType):
            return self._struct(kind.cls)
        if isinstance(kind, msgspec.inspect.UnionType):
            walks = [w for w in (self._type(t) for t in kind.types) if w is not None]
            if len(walks) > 1:
                raise TypeError("a union of several structs has no wire plan")
            return _if_dict(walks[0]) if walks else None
        if isinstance(kind, (msgspec.inspect.VarTupleType, msgspec.inspect.ListType)):
            item = self._type(kind.item_type)
            return _each(item) if item is not None else None
        if isinstance(kind, msgspec.inspect.DictType):
            item = self._type(kind.value_type)
            return _each_value(item) if item is not None else None
        if isinstance(kind, msgspec.inspect.TupleType) and any(
            self._type(t) is not None for t in kind.item_types
        ):
            raise TypeError("a fixed tuple of structs has no wire plan")
        return None


def _struct_walk(
    nested: tuple[tuple[str, Walk], ...], drops: tuple[tuple[str, str, Any], ...]
) -> Walk:
    def walk(value: Any, used: set[str] | None) -> None:
        for name, inner in nested:
            if name in value:
                inner(value[name], used)
        for name, label, default in drops:
            if name in value:
                if value[name] == default:
                    del value[name]
                elif used is not None:
                    used.add(label)

    return walk


def _if_dict(inner: Walk) -> Walk:
    def walk(value: Any, used: set[str] | None) -> None:
        if isinstance(value, dict):
            inner(value, used)

    return walk


def _each(inner: Walk) -> Walk:
    def walk(value: Any, used: set[str] | None) -> None:
        for item in value:
            inner(item, used)

    return walk


def _each_value(inner: Walk) -> Walk:
    def walk(value: Any, used: set[str] | None) -> None:
        for item in value.values():
            inner(item, used)

    return walk


_UNKNOWN_FIELD = re.compile(
    r"Object contains unknown field `(?P<field>[^`]*)`(?: - at `(?P<at>[^`]*)`)?"
)
_UNKNOWN_VALUE = re.compile(r"Invalid enum value (?P<value>.*?)(?: - at `(?P<at>[^`]*)`)?$")


def decode_error(exc: msgspec.DecodeError, what: str) -> BundleError:
    """The error for a bundle or delta that does not decode: ``UnsupportedBundleError`` when it
    uses a field or value this code does not know (a newer operator's feature), naming it."""
    text = str(exc)
    if (found := _UNKNOWN_FIELD.search(text)) is not None:
        where = (found["at"] or "$").removeprefix("$").lstrip(".")
        name = f"{where}.{found['field']}" if where else found["field"]
        return UnsupportedBundleError(
            f"{what} uses field `{name}`, which this gateway does not know: it was signed by a "
            "newer operator for a feature this sidecar predates; the bundle in force stays "
            "(upgrade the sidecar by restarting its pod, or stop using the feature)"
        )
    if (found := _UNKNOWN_VALUE.search(text)) is not None:
        where = (found["at"] or "$").removeprefix("$").lstrip(".")
        return UnsupportedBundleError(
            f"{what} sets `{where}` to {found['value']}, a value this gateway does not know: "
            "it was signed by a newer operator for a feature this sidecar predates; the bundle "
            "in force stays (upgrade the sidecar by restarting its pod)"
        )
    return BundleError(f"malformed {what}: {text}")


def later_fields(forms: Iterable[WireForm]) -> list[str]:
    """Every later (post-format-1) field these forms know: what a sidecar advertises."""
    return sorted({name for form in forms for name in form.added})
