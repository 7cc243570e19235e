"""Check that a decision log is intact: every line hashes to its ``hash`` and links to the last.

Rules, applied line by line (blank lines are ignored):

1. A line must be a JSON object with ``type``, ``prev`` and ``hash`` and the fields of its type.
2. Its ``hash`` must equal the sha256 of its canonical JSON without ``hash`` (else: edited).
3. Its ``prev`` must equal the previous record's ``hash`` (else: a line was deleted, inserted
   or reordered). The one exception is a ``chain`` record with ``prev`` of 64 zeros and
   ``start`` ``genesis``, ``recover`` or ``override``: it begins a new *segment* (a gateway
   started a fresh chain), which the result counts.
4. The first record must be such a segment start, unless ``partial`` is set: a file cut by log
   rotation starts mid-chain, and then the first record's ``prev`` is reported as ``anchor``
   (it must equal the last ``hash`` of the file before it).
5. A ``recover`` marker is a *gap*: records the gateway could not write (a full disk, a stalled
   stdout). When it names the record it follows (``after``), that must be the record just
   before it, so nothing is missing but the ``lost`` records it declares; one line that is not
   valid JSON (a write torn by the failure) may stand between them. Gaps are reported, not
   failures, with the allow decisions the marker says were not forwarded (``notForwarded``).

Truncation at the end cannot be seen from the file alone: pass ``expect_head`` (the chain head
a gateway reports) to check it. The hash is not keyed, so the chain proves integrity against
edits only relative to a head hash kept elsewhere; against a writer who rewrites every later
line, anchor the head.

With ``skip_non_records``, lines that are not JSON objects with ``type``/``prev``/``hash`` (other
log output interleaved by ``kubectl logs``) are skipped instead of failing; a line that looks
like a record but is malformed still fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from remit.audit.lines import parse_line, recompute_hash
from remit.audit.records import GENESIS, ChainRecord
from remit.errors import AuditError

SEGMENT_STARTS = frozenset({"genesis", "recover", "override"})
TORN = "not valid JSON (a truncated or corrupted line)"


@dataclass(frozen=True, slots=True)
class Gap:
    """Records a gateway could not write, declared by the ``recover`` marker on ``line``.

    ``lost`` is how many (``None`` for markers that predate the count), ``after`` the hash of
    the record before the gap, ``torn`` the line number of a partly written line, if any, and
    ``not_forwarded`` the allow decisions whose calls the gateway then did not forward.
    """

    line: int
    lost: int | None
    after: str | None
    message: str
    torn: int | None = None
    not_forwarded: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "line": self.line,
            "lost": self.lost,
            "after": self.after,
            "message": self.message,
            "torn": self.torn,
            "notForwarded": list(self.not_forwarded),
        }

    def describe(self) -> str:
        """One line for people."""
        count = "an unknown number of" if self.lost is None else str(self.lost)
        torn = f", torn line {self.torn}" if self.torn else ""
        unsent = ""
        if self.not_forwarded:
            unsent = f"; not forwarded despite an allow record: {', '.join(self.not_forwarded)}"
        return f"line {self.line}: {count} record(s) not written{torn}{unsent} ({self.message})"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The verdict on a log: ``ok``, or the first bad ``line`` (1-based) and ``reason``.

    ``records`` counts verified records, ``segments`` chain starts, ``skipped`` non-record
    lines; ``head`` is the last verified hash and ``anchor`` the first record's ``prev``;
    ``gaps`` the declared gaps (rule 5).
    """

    ok: bool
    records: int
    segments: int
    skipped: int
    head: str | None
    anchor: str | None
    line: int | None = None
    reason: str | None = None
    gaps: tuple[Gap, ...] = ()

    @property
    def message(self) -> str:
        """One line for people: ``line 7: hash mismatch (record edited)`` or a summary."""
        if not self.ok:
            return f"line {self.line}: {self.reason}" if self.line else str(self.reason)
        summary = f"intact: {self.records} records in {self.segments} segment(s)"
        if self.gaps:
            known = [gap.lost for gap in self.gaps if gap.lost is not None]
            lost = f"{sum(known)} record(s)" if len(known) == len(self.gaps) else "records"
            summary += f"; {len(self.gaps)} gap(s) where {lost} could not be written"
            unsent = sum(len(gap.not_forwarded) for gap in self.gaps)
            if unsent:
                summary += f"; {unsent} allowed call(s) not forwarded"
        return summary

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``remit audit verify --output json``."""
        return {
            "ok": self.ok,
            "records": self.records,
            "segments": self.segments,
            "skipped": self.skipped,
            "head": self.head,
            "anchor": self.anchor,
            "line": self.line,
            "reason": self.reason,
            "message": self.message,
            "gaps": [gap.to_dict() for gap in self.gaps],
        }


def _looks_like_record(line: bytes) -> bool | None:
    """``None`` if ``line`` is not JSON, else whether it is an object with a record's keys."""
    try:
        data = msgspec.json.decode(line)
    except msgspec.DecodeError:
        return None
    return isinstance(data, dict) and "type" in data and "prev" in data and "hash" in data


def verify_lines(
    lines: Iterable[bytes],
    *,
    partial: bool = False,
    skip_non_records: bool = False,
    expect_head: str | None = None,
) -> VerifyResult:
    """Verify a log given as lines (with or without their ``\\n``). See the module rules."""
    records = segments = skipped = 0
    head: str | None = None
    anchor: str | None = None
    head_line = 0
    torn: int | None = None  # a line that is not JSON, excused only by a recover marker next
    gaps: list[Gap] = []

    def fail(number: int | None, reason: str) -> VerifyResult:
        return VerifyResult(
            False, records, segments, skipped, head, anchor, number, reason, tuple(gaps)
        )

    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            record = parse_line(line)
        except ValueError as exc:
            looks = _looks_like_record(line)
            if skip_non_records and not looks:
                skipped += 1
                continue
            if looks is None:
                if torn is None:
                    torn = number
                    continue
                return fail(torn, TORN)
            if not looks:
                return fail(number, "not a decision record (no type, prev and hash)")
            return fail(number, str(exc))
        if not record.prev or not record.hash:
            return fail(number, "malformed record: missing prev or hash")
        if recompute_hash(record) != record.hash:
            return fail(number, "hash mismatch (record edited)")
        starts_segment = (
            record.prev == GENESIS
            and isinstance(record, ChainRecord)
            and record.start in SEGMENT_STARTS
        )
        if isinstance(record, ChainRecord) and record.start == "recover" and starts_segment:
            if record.after is not None and head is not None and record.after != head:
                return fail(
                    number,
                    f"the recover marker follows {record.after}, not line {head_line}'s hash "
                    "(records are missing beyond the ones it declares)",
                )
            if torn is not None and record.after is None:
                return fail(torn, TORN)
            gaps.append(
                Gap(number, record.lost, record.after, record.message, torn, record.not_forwarded)
            )
            torn = None
        elif torn is not None:
            return fail(torn, TORN)
        if head is None:
            anchor = record.prev
            if not starts_segment and not partial:
                return fail(
                    number,
                    "the log does not start a chain (first prev is not 64 zeros on a chain "
                    "record); if it was cut by log rotation, verify it as partial",
                )
        elif record.prev != head and not starts_segment:
            return fail(
                number,
                f"prev does not match line {head_line}'s hash "
                "(a line was deleted, inserted or reordered)",
            )
        segments += starts_segment
        records += 1
        head, head_line = record.hash, number

    if torn is not None:
        return fail(torn, TORN)
    if records == 0:
        return fail(None, "no records found")
    if expect_head is not None and head != expect_head:
        return fail(
            None,
            f"last record's hash {head} is not the expected head {expect_head} "
            "(records were removed from the end, or added after it)",
        )
    return VerifyResult(True, records, segments, skipped, head, anchor, gaps=tuple(gaps))


def verify_file(
    path: Path,
    *,
    partial: bool = False,
    skip_non_records: bool = False,
    expect_head: str | None = None,
) -> VerifyResult:
    """Verify the log at ``path``; raises :class:`AuditError` when it cannot be read."""
    try:
        with path.open("rb") as stream:
            return verify_lines(
                stream,
                partial=partial,
                skip_non_records=skip_non_records,
                expect_head=expect_head,
            )
    except OSError as exc:
        raise AuditError(f"cannot read audit file {path}: {exc.strerror}") from exc


def verify_tail(path: Path, window: int = 64 * 1024) -> VerifyResult:
    """Verify the end of the log at ``path`` (enough to resume it) without reading it all.

    Reads the last ``window`` bytes (growing until they hold two whole lines), checks those
    records as a partial chain and that the file ends with a newline. Line numbers in the
    result count from the first whole line of the window. An empty file verifies as ``ok``
    with no ``head``.
    """
    try:
        with path.open("rb") as stream:
            size = stream.seek(0, os.SEEK_END)
            if size == 0:
                return VerifyResult(True, 0, 0, 0, None, None)
            while True:
                window = min(window, size)
                stream.seek(size - window)
                data = stream.read(window)
                if window == size or data.count(b"\n", 0, len(data) - 1) >= 2:
                    break
                window *= 2
    except OSError as exc:
        raise AuditError(f"cannot read audit file {path}: {exc.strerror}") from exc
    if not data.endswith(b"\n"):
        return VerifyResult(False, 0, 0, 0, None, None, None, "the last line is incomplete")
    if window < size:
        data = data[data.index(b"\n") + 1 :]
    return verify_lines(data.splitlines(), partial=True)
