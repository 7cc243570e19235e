"""Checking keyed argument digests with the keys an investigator holds.

A record's ``arguments.key`` names the key its digest was taken under (``arguments.key_id``),
so records written before and after a key rotation each say which key checks them. Given
keys (``--digest-key``: a server's key) or roots (``--digest-root``: the operator's root
Secret value, from which each record's server key is derived, ``keydelivery.server_key``),
:func:`check_digests` tells, per key id, how many records it covers, which key ids no given
key matches, and, where a record also kept its arguments unredacted (``redacted`` mode with
nothing redacted), whether the digest is that of those values under that key: a record whose
digest does not match is named and fails the check.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from remit.audit.arguments import REDACTED, key_id
from remit.audit.canonical import canonical_json, digest_json
from remit.audit.keydelivery import server_key

MAX_NAMED = 100  # mismatching records named in a report; the count is exact


@dataclass(slots=True)
class DigestReport:
    """What the given keys say about the records' argument digests."""

    keyed: dict[str, int] = field(default_factory=dict)  # key id with a given key → records
    unknown: dict[str, int] = field(default_factory=dict)  # key id with no given key → records
    plain: int = 0  # unkeyed (sha256) digests
    checked: int = 0  # digests recomputed from unredacted values
    mismatched: int = 0
    named: list[str] = field(default_factory=list)  # the first MAX_NAMED mismatching ids

    @property
    def ok(self) -> bool:
        """No digest contradicts the values kept beside it."""
        return self.mismatched == 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the report."""
        return {
            "ok": self.ok,
            "keyed": dict(sorted(self.keyed.items())),
            "unknownKeys": dict(sorted(self.unknown.items())),
            "plain": self.plain,
            "checked": self.checked,
            "mismatched": self.mismatched,
            "mismatchedRecords": list(self.named),
        }

    def describe(self) -> list[str]:
        """One line per finding, for the text output."""
        lines = [f"digest key {k}: {n} record(s)" for k, n in sorted(self.keyed.items())]
        lines += [
            f"digest key {k}: {n} record(s), no key given for it"
            for k, n in sorted(self.unknown.items())
        ]
        if self.plain:
            lines.append(f"{self.plain} record(s) with unkeyed sha256 digests")
        lines.append(f"{self.checked} digest(s) recomputed from the values kept beside them")
        lines += [f"record {r}: digest does not match its arguments" for r in self.named]
        return lines


class _Keys:
    """Keys by id: the given ones, and each root's key for every server seen."""

    def __init__(self, keys: Sequence[bytes], roots: Sequence[bytes]) -> None:
        self.by_id = {key_id(k): k for k in keys}
        self.roots = list(roots)
        self._derived: set[str] = set()

    def find(self, kid: str, server: str) -> bytes | None:
        if kid not in self.by_id and server not in self._derived and len(self._derived) < 10_000:
            self._derived.add(server)
            for root in self.roots:
                key = server_key(root, server)
                self.by_id.setdefault(key_id(key), key)
        return self.by_id.get(kid)


class _Arguments(msgspec.Struct):
    digest: str = ""
    key: str | None = None
    values: Any = None


class _Record(msgspec.Struct):
    id: str = ""
    server: str = ""
    arguments: _Arguments | None = None


_DECODER = msgspec.json.Decoder(_Record)


def check_digests(
    lines: Iterable[bytes], keys: Sequence[bytes] = (), roots: Sequence[bytes] = ()
) -> DigestReport:
    """Check the argument digests of the records among ``lines`` (other lines are skipped:
    the chain verification already judged them)."""
    known = _Keys(keys, roots)
    report = DigestReport()
    for line in lines:
        try:
            record = _DECODER.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        arguments = record.arguments
        if arguments is None or not arguments.digest:
            continue
        if arguments.key is None:
            report.plain += 1
            key = None
        else:
            key = known.find(arguments.key, record.server)
            counts = report.keyed if key is not None else report.unknown
            counts[arguments.key] = counts.get(arguments.key, 0) + 1
            if key is None:
                continue
        if not isinstance(arguments.values, dict):
            continue
        try:
            if f'"{REDACTED}"'.encode() in canonical_json(arguments.values):
                continue  # something was redacted: the digest is of what is not here
            report.checked += 1
            if digest_json(arguments.values, key) == arguments.digest:
                continue
        except (TypeError, msgspec.EncodeError):
            pass
        report.mismatched += 1
        if len(report.named) < MAX_NAMED:
            report.named.append(record.id[:64])
    return report


__all__ = ["DigestReport", "check_digests"]
