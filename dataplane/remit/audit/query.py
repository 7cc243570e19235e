"""Finding records: the filters of ``remit audit query`` and ``remit audit tail``.

A :class:`Filter` keeps the decision records that match every criterion given (subject, agent,
tool, method, decision, reason, server, pod, a time window) and, when asked, the outcome
records completing them. Names compare exactly except ``tool``, which is an ``fnmatch``
pattern (``read_*``). Times are RFC 3339 or relative to now (``15m``, ``2h``, ``7d``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from remit.audit.lines import parse_line
from remit.audit.reading import SourceLine
from remit.audit.records import AuditRecord, ChainRecord, DecisionRecord, OutcomeRecord
from remit.errors import AuditError

_RELATIVE = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_when(value: str, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> datetime:
    """An RFC 3339 time, or a duration before now (``90s``, ``15m``, ``2h``, ``7d``)."""
    relative = _RELATIVE.fullmatch(value.strip())
    if relative:
        amount, unit = relative.groups()
        return now() - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        message = f"not a time or duration: {value!r} (e.g. 2026-12-01T10:00:00Z, 2h)"
        raise AuditError(message) from exc
    if moment.tzinfo is None:
        raise AuditError(f"give the time zone of {value!r} (e.g. a trailing Z)")
    return moment


def record_time(record: AuditRecord) -> datetime | None:
    """When the record was written (None if its time does not parse)."""
    try:
        return datetime.fromisoformat(record.time)
    except ValueError:
        return None


@dataclass(frozen=True)
class Filter:
    """What ``query`` keeps. Empty criteria match everything."""

    subject: str | None = None
    agent: str | None = None
    tool: str | None = None
    method: str | None = None
    decision: str | None = None
    reason: str | None = None
    server: str | None = None
    pod: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    outcomes: bool = False
    _kept: set[str] = field(default_factory=set, compare=False)

    def _fields(self, record: DecisionRecord) -> bool:
        exact = (
            (self.subject, record.subject),
            (self.agent, record.agent),
            (self.method, record.method),
            (self.decision, record.decision),
            (self.reason, record.reason),
            (self.server, record.server),
            (self.pod, record.pod),
        )
        if any(wanted is not None and wanted != value for wanted, value in exact):
            return False
        return self.tool is None or fnmatch.fnmatchcase(record.tool, self.tool)

    def _in_window(self, record: AuditRecord) -> bool:
        if self.since is None and self.until is None:
            return True
        moment = record_time(record)
        if moment is None:
            return False
        return (self.since is None or moment >= self.since) and (
            self.until is None or moment <= self.until
        )

    def keeps(self, record: AuditRecord) -> bool:
        """Whether ``record`` is one the query asked for (call in log order)."""
        if isinstance(record, DecisionRecord):
            kept = self._in_window(record) and self._fields(record)
            if kept and self.outcomes:
                self._kept.add(record.id)
            return kept
        if isinstance(record, OutcomeRecord) and self.outcomes and record.decision_id in self._kept:
            self._kept.discard(record.decision_id)
            return True
        return False


def matching(
    lines: Iterable[SourceLine], wanted: Filter, *, strict: bool = False
) -> Iterator[tuple[SourceLine, AuditRecord]]:
    """The records among ``lines`` that ``wanted`` keeps; other lines are skipped unless
    ``strict``, which raises :class:`AuditError` naming a line that is not a record."""
    for item in lines:
        try:
            record = parse_line(item.line)
        except ValueError as exc:
            if strict:
                raise AuditError(f"{item.where}: {exc}") from exc
            continue
        if wanted.keeps(record):
            yield item, record


def summary(record: AuditRecord) -> str:
    """One line for people."""
    if isinstance(record, DecisionRecord):
        target = f"{record.method} {record.tool}".strip()
        verdict = record.decision.upper()
        return (
            f"{record.time}  {verdict:<5}  {record.reason:<22} {record.agent or '-'} → {target}"
            f"  for {record.subject or '-'}  [{record.server} {record.pod}]  {record.id}"
        )
    if isinstance(record, OutcomeRecord):
        status = "" if record.status is None else f" HTTP {record.status}"
        error = f" ({record.error})" if record.error else ""
        return (
            f"{record.time}  {'':5}  outcome {record.outcome}{status}{error} "
            f"after {record.latency_ms} ms  of {record.decision_id}"
        )
    if isinstance(record, ChainRecord):
        where = f"[{record.server} {record.pod}]"
        return f"{record.time}  chain {record.start} {where} {record.message}"
    return (
        f"{record.time}  consent {record.answer} by {record.login_subject} for {record.subject}"
        f" / {record.agent} → {record.tool}  of {record.request}"
    )


__all__ = ["Filter", "matching", "parse_when", "record_time", "summary"]
