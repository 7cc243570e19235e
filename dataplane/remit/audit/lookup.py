"""Finding a decision, its outcome and the answers to its consent request in audit lines.

``remit audit explain`` is given an id, or just its first characters, of a decision or of
its outcome, and lines from one or more logs. Only lines that mention the id are parsed;
each found record's own hash is checked (``intact``). A prefix that matches several ids is
refused, naming them, rather than one of them being explained at random. Rendering what was
found is ``narrative.py``'s job; ``explain.py`` puts the two together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

from remit.audit.lines import parse_line, recompute_hash
from remit.audit.reading import SourceLine
from remit.audit.records import (
    AuditRecord,
    ChainRecord,
    ConsentRecord,
    DecisionRecord,
    OutcomeRecord,
)
from remit.errors import AuditError


@dataclass(frozen=True, slots=True)
class Found:
    """A record located in a log: the record, its 1-based line number and whether its hash holds."""

    record: AuditRecord
    line: int
    intact: bool
    file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The record as written, plus where it was and whether it is intact."""
        where: dict[str, Any] = {} if self.file is None else {"file": self.file}
        return {
            **where,
            "line": self.line,
            "intact": self.intact,
            "record": msgspec.to_builtins(self.record),
        }


Lines = Callable[[], Iterable[SourceLine]]
MIN_PREFIX = 4


def scan(lines: Lines, needle: str) -> Iterator[Found]:
    """Yield every record whose line mentions ``needle`` (others are not parsed)."""
    key = needle.encode()
    for item in lines():
        if key not in item.line:
            continue
        try:
            record = parse_line(item.line)
        except ValueError:  # not a record: other output, or damaged
            continue
        yield Found(record, item.number, recompute_hash(record) == record.hash, item.source)


def _unique(found: list[Found], prefix: str, what: str) -> Found | None:
    ids = sorted({f.record.id for f in found})
    if len(ids) > 1:
        shown = ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")
        raise AuditError(f"{len(ids)} {what} ids start with {prefix!r}: {shown}; give more of it")
    return found[0] if found else None


def find(lines: Lines, prefix: str) -> tuple[Found | None, Found | None, Found | None]:
    if len(prefix) < MIN_PREFIX:
        raise AuditError(f"give at least {MIN_PREFIX} characters of the id")
    decisions: list[Found] = []
    outcomes: list[Found] = []
    markers: list[Found] = []
    for found in scan(lines, prefix):
        record = found.record
        if isinstance(record, ChainRecord):
            markers.append(found)
        elif isinstance(record, DecisionRecord) and record.id.startswith(prefix):
            decisions.append(found)
        elif isinstance(record, OutcomeRecord) and (
            record.decision_id.startswith(prefix) or record.id.startswith(prefix)
        ):
            outcomes.append(found)
    decision = _unique(decisions, prefix, "decision")
    if decision is None:
        outcome = _unique(outcomes, prefix, "outcome")
        if outcome is None:
            return None, None, None
        wanted = outcome.record
        assert isinstance(wanted, OutcomeRecord)
        for found in scan(lines, wanted.decision_id):
            if isinstance(found.record, DecisionRecord) and found.record.id == wanted.decision_id:
                decision = found
                break
        if decision is None:
            return None, outcome, None
    else:
        outcome = next(
            (o for o in outcomes if o.record.decision_id == decision.record.id),  # type: ignore[union-attr]
            None,
        )
    identifier = decision.record.id
    voided = next(
        (
            m
            for m in markers
            if isinstance(m.record, ChainRecord) and identifier in m.record.not_forwarded
        ),
        None,
    )
    return decision, outcome, voided


def answers(lines: Lines, request: str) -> tuple[Found, ...]:
    """Every ``consent`` record answering ``request`` among ``lines``, in order."""
    return tuple(
        each
        for each in scan(lines, request)
        if isinstance(each.record, ConsentRecord) and each.record.request == request
    )


__all__ = ["MIN_PREFIX", "Found", "Lines", "answers", "find", "scan"]
