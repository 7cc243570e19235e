"""Turning records into chained JSON lines and back.

:func:`seal` is a record's *to-line*: it links the record to the previous hash (``prev``),
hashes its canonical JSON and returns the sealed record with its line. :func:`parse_line` is
the *from-line*: it rebuilds the typed record, strictly, without checking the hash;
:func:`recompute_hash` gives the hash a record should carry (``verify.py`` compares).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import msgspec

from remit.audit.canonical import ENCODER
from remit.audit.reading import SourceLine
from remit.audit.records import AuditRecord

_DECODER: msgspec.json.Decoder[AuditRecord] = msgspec.json.Decoder(AuditRecord)
#: Said after a field, record type or value this code does not know: records from a newer
#: gateway are refused by name, never read with the unknown part dropped (its hash would not
#: hold, and an auditor would not see what it says).
NEWER = (
    " (this version of remit does not know it: the line may have been written by a newer "
    "Remit gateway; read it with a remit at least as new as that gateway)"
)
_NEWER_SIGNS = ("unknown field", "Invalid enum value", "- at `$.type`")


class Entry(msgspec.Struct, frozen=True):
    """A sealed record (``prev`` and ``hash`` filled in) and its JSON line.

    A struct, not a dataclass: one is built for every record, and a frozen dataclass's
    ``__init__`` costs several times more.
    """

    record: AuditRecord
    line: bytes

    @property
    def hash(self) -> str:
        """The record's hash."""
        return self.record.hash

    @property
    def prev(self) -> str:
        """The hash of the record before it (64 zeros at the start of a chain)."""
        return self.record.prev


def seal(record: AuditRecord, prev: str) -> Entry:
    """Chain ``record`` after ``prev``: compute its hash and its JSON line (ending in ``\\n``).

    The line is the canonical JSON of the record with ``prev``, with ``hash`` appended as the
    last key, so the hashed bytes are serialised exactly once.
    """
    canonical = ENCODER.encode(msgspec.structs.replace(record, prev=prev, hash=""))
    digest = hashlib.sha256(canonical).hexdigest()
    line = b'%s,"hash":"%s"}\n' % (canonical[:-1], digest.encode())
    return Entry(msgspec.structs.replace(record, prev=prev, hash=digest), line)


def recompute_hash(record: AuditRecord) -> str:
    """Return the hash ``record`` should carry, from all its fields but ``hash``."""
    return hashlib.sha256(ENCODER.encode(msgspec.structs.replace(record, hash=""))).hexdigest()


def parse_line(line: bytes) -> AuditRecord:
    """Parse one JSON line into a typed record; raises ``ValueError`` naming the problem.

    Checks the shape (types, required and unknown fields), not the hash.
    """
    try:
        return _DECODER.decode(line)
    except msgspec.ValidationError as exc:
        newer = NEWER if any(sign in str(exc) for sign in _NEWER_SIGNS) else ""
        raise ValueError(f"malformed record: {exc}{newer}") from exc
    except msgspec.DecodeError as exc:
        raise ValueError("not valid JSON") from exc


def unreadable(items: Iterable[SourceLine], needle: str) -> str:
    """``; but line F:N mentions it and cannot be read: why`` for the first line that mentions
    ``needle`` and is not a record this code can read (one of a newer gateway), else ``""``."""
    key = needle.encode()
    for item in items:
        if key in item.line and item.line.startswith(b"{"):
            try:
                parse_line(item.line)
            except ValueError as exc:
                return f"; but line {item.where} mentions it and cannot be read: {exc}"
    return ""
