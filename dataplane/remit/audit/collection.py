"""Verifying records gathered from many sidecars, in any order, chain by chain.

A SIEM export or ``kubectl logs -l app=files --prefix`` interleaves the chains of every pod (and
every restart of one). Order in the input means nothing here: each record is checked against
its own hash, then records are linked by ``prev`` into chains. A chain starts at a segment
start (``prev`` of 64 zeros on a ``chain`` record); a ``recover`` marker continues the chain
it names (``after``) across its declared gap; a ``genesis`` naming a previous anchored head
(``after``, a restarted sidecar) is reported as continuing that pod's earlier chain.

Problems that fail verification: an edited record (hash mismatch), a malformed record, two
different records claiming the same predecessor (a fork: something was replaced), a record
whose predecessor is missing (a gap nobody declared) unless ``partial`` (logs cut by
rotation), and, with anchors, an anchored head that is not among the records of its pod (the
log was cut before it, or rewritten). Identical duplicate lines (overlapping exports) count once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from remit.audit.anchors import Anchor
from remit.audit.lines import parse_line, recompute_hash
from remit.audit.reading import SourceLine
from remit.audit.records import GENESIS, AuditRecord, ChainRecord
from remit.audit.verify import SEGMENT_STARTS, _looks_like_record


@dataclass
class ChainReport:
    """One chain: who wrote it, how long it is, where it ends, what is missing."""

    pod: str
    server: str
    start: str  # hash of its first record
    started: str  # time of its first record
    kind: str  # genesis, override, or "partial" when its beginning was not given
    records: int = 0
    head: str = ""
    ended: str = ""
    gaps: list[str] = field(default_factory=list)
    continues: str | None = None  # the previous anchored head its genesis names

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "pod": self.pod,
            "server": self.server,
            "start": self.start,
            "started": self.started,
            "kind": self.kind,
            "records": self.records,
            "head": self.head,
            "ended": self.ended,
            "gaps": self.gaps,
            "continues": self.continues,
        }


@dataclass
class CollectionResult:
    """The verdict over every chain in the input."""

    chains: list[ChainReport]
    problems: list[str]
    skipped: int
    anchors: list[str] = field(default_factory=list)  # one line per anchor checked

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``remit audit verify --output json``."""
        return {
            "ok": self.ok,
            "chains": [chain.to_dict() for chain in self.chains],
            "problems": self.problems,
            "skipped": self.skipped,
            "anchors": self.anchors,
        }


def _starts(record: AuditRecord) -> bool:
    return (
        record.prev == GENESIS
        and isinstance(record, ChainRecord)
        and record.start in SEGMENT_STARTS
    )


def verify_collection(
    lines: Iterable[SourceLine],
    *,
    anchors: Sequence[Anchor] = (),
    partial: bool = False,
    skip_non_records: bool = False,
) -> CollectionResult:
    """Verify every chain in ``lines`` (see the module docstring)."""
    problems: list[str] = []
    by_hash, children, skipped = _index(lines, problems, skip_non_records)
    chains = _walk(by_hash, children, problems, partial)
    checked: list[str] = []
    _check_anchors(anchors, by_hash, chains, problems, checked)
    return CollectionResult(chains, problems, skipped, checked)


Index = dict[str, tuple[AuditRecord, str]]


def _index(
    lines: Iterable[SourceLine], problems: list[str], skip_non_records: bool
) -> tuple[Index, dict[str, list[str]], int]:
    """Records by hash and hashes by ``prev``, each record's own hash checked."""
    skipped = 0
    by_hash: dict[str, tuple[AuditRecord, str]] = {}
    children: dict[str, list[str]] = {}
    for item in lines:
        if not item.line:
            continue
        try:
            record = parse_line(item.line)
        except ValueError as exc:
            looks = _looks_like_record(item.line)
            if skip_non_records and not looks:
                skipped += 1
            elif looks is None:
                problems.append(f"{item.where}: not valid JSON (a truncated or corrupted line)")
            else:
                problems.append(f"{item.where}: {exc}")
            continue
        if not record.prev or not record.hash or recompute_hash(record) != record.hash:
            problems.append(f"{item.where}: hash mismatch (record edited)")
            continue
        if record.hash in by_hash:
            continue  # the same line gathered twice
        by_hash[record.hash] = (record, item.where)
        children.setdefault(record.prev, []).append(record.hash)
    return by_hash, children, skipped


def _walk(
    by_hash: Index, children: dict[str, list[str]], problems: list[str], partial: bool
) -> list[ChainReport]:
    """Follow each chain from its start; forks and undeclared gaps become problems."""
    for prev, hashes in children.items():
        if prev != GENESIS and len(hashes) > 1:
            places = ", ".join(sorted(by_hash[h][1] for h in hashes))
            problems.append(f"{places}: {len(hashes)} records follow {prev} (a fork)")
    recovers = {
        record.after: digest
        for digest, (record, _) in by_hash.items()
        if isinstance(record, ChainRecord) and record.start == "recover" and record.after
    }
    roots = [
        digest
        for digest, (record, _) in by_hash.items()
        if (_starts(record) and not (isinstance(record, ChainRecord) and record.start == "recover"
                                     and record.after in by_hash))
        or (record.prev != GENESIS and record.prev not in by_hash)
    ]  # fmt: skip
    chains = []
    for root in sorted(roots, key=lambda digest: by_hash[digest][0].time):
        record, where = by_hash[root]
        kind = record.start if isinstance(record, ChainRecord) and _starts(record) else "partial"
        if kind == "partial" and not partial:
            problems.append(
                f"{where}: its predecessor {record.prev} is not among the records (records are "
                "missing; if the logs were cut by rotation, verify with --partial)"
            )
        chain = ChainReport(record.pod, record.server, root, record.time, kind)
        if isinstance(record, ChainRecord) and record.start == "genesis" and record.after:
            chain.continues = record.after
        chains.append(chain)
        digest: str | None = root
        while digest is not None:
            record, where = by_hash[digest]
            if isinstance(record, ChainRecord) and record.start == "recover" and digest != root:
                lost = "an unknown number of" if record.lost is None else str(record.lost)
                chain.gaps.append(f"{where}: {lost} record(s) not written ({record.message})")
            chain.records += 1
            chain.head, chain.ended = digest, record.time
            following = children.get(digest, [])
            digest = following[0] if following else recovers.get(digest)
    return chains


def _check_anchors(
    anchors: Sequence[Anchor],
    by_hash: Index,
    chains: Sequence[ChainReport],
    problems: list[str],
    checked: list[str],
) -> None:
    pods = {chain.pod for chain in chains}
    for anchor in anchors:
        found = by_hash.get(anchor.head)
        if found is not None:
            checked.append(f"{anchor.pod}: anchored head {anchor.head[:16]} present")
        elif anchor.pod in pods:
            problems.append(
                f"{anchor.pod}: the head anchored at {anchor.time or 'an unknown time'} "
                f"({anchor.head}) is not among its records: its log was cut before it or "
                "rewritten"
            )
        else:
            checked.append(f"{anchor.pod}: not checked (no records of this pod given)")


__all__ = ["ChainReport", "CollectionResult", "verify_collection"]
