"""Reading decision records back from wherever they were gathered: files, standard input, or
``kubectl logs`` output (``--prefix`` puts ``[pod/NAME/CONTAINER] `` before each line,
``--timestamps`` an RFC 3339 time), from one sidecar or many interleaved.

:func:`record_lines` yields each line with its prefix removed and where it came from, and
drops the lines that are not records at all (the sidecar's own log output) only when asked:
a damaged record must never be silently skipped by a verifier. Nothing reads a whole log into
memory: lines stream, each bounded (``MAX_LINE_BYTES``), and :class:`Replayable` reads one
source again from its start when a verifier needs a second pass (standard input is kept, as it
streams, in a temporary file that moves to disk past ``SPOOL_BYTES``).
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol

from remit.errors import AuditError

STDIN = "-"
#: Longest line read as one record; longer lines are reported, not read into memory whole.
MAX_LINE_BYTES = 4 * 1024 * 1024
#: Standard input kept for a second pass stays in memory up to this size, then goes to disk.
SPOOL_BYTES = 8 * 1024 * 1024
_PREFIX = re.compile(rb"^(\[[^\]\n]{1,512}\] )?(\d{4}-\d\d-\d\dT[0-9:.]+(Z|[+-]\d\d:?\d\d) )?")


@dataclass(frozen=True, slots=True)
class SourceLine:
    """One line of one source: ``source`` is the file name (``-`` for stdin), ``number``
    1-based, ``line`` without its kubectl prefix and line ending."""

    source: str
    number: int
    line: bytes

    @property
    def where(self) -> str:
        """``file:line`` for messages."""
        return f"{self.source}:{self.number}"


def strip_prefix(line: bytes) -> bytes:
    """``line`` without a leading ``kubectl logs --prefix``/``--timestamps`` prefix."""
    line = line.strip()
    if line.startswith(b"{"):
        return line
    found = _PREFIX.match(line)
    if found and found.end() and line[found.end() :].startswith(b"{"):
        return line[found.end() :]
    return line


class LineStream(Protocol):
    """What lines are read from: a binary file, standard input's buffer, a :class:`Replayable`'s
    copy of it."""

    def readline(self, size: int = -1, /) -> bytes: ...


def _lines(stream: LineStream, source: str) -> Iterator[SourceLine]:
    number = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raise AuditError(f"{source}:{number}: line longer than {MAX_LINE_BYTES} bytes")
        yield SourceLine(source, number, strip_prefix(raw))


def record_lines(
    sources: Iterable[str], stdin: LineStream | None = None, *, blank: bool = False
) -> Iterator[SourceLine]:
    """Every non-blank line (every line with ``blank``, so positions count as in the file)
    of ``sources`` (paths, or ``-`` for ``stdin``), in order.

    Raises :class:`AuditError` naming a file that cannot be read.
    """
    for source in sources:
        if source == STDIN:
            yield from (s for s in _lines(stdin or sys.stdin.buffer, source) if blank or s.line)
            continue
        try:
            with Path(source).open("rb") as stream:
                yield from (s for s in _lines(stream, source) if blank or s.line)
        except OSError as exc:
            raise AuditError(f"cannot read audit file {source}: {exc.strerror}") from exc


class _Tee:
    """Standard input, copying what is read into ``copy`` (for a second pass)."""

    def __init__(self, stream: LineStream, copy: IO[bytes]) -> None:
        self.stream = stream
        self.copy = copy

    def readline(self, size: int = -1, /) -> bytes:
        data = self.stream.readline(size)
        self.copy.write(data)
        return data

    def drain(self) -> None:
        """Copy what was not read yet (the first pass may stop at a bad line)."""
        self.copy.seek(0, 2)
        while data := self.stream.readline(MAX_LINE_BYTES + 1):
            self.copy.write(data)


class Replayable:
    """Sources (paths, or ``-``) whose lines can be read more than once, one pass at a time,
    none of them holding the log in memory: a file is read again; standard input is copied, as
    it is first read, into a temporary file (disk past ``SPOOL_BYTES``), which later passes
    read. Use it as a context manager (the copy is removed on exit)."""

    def __init__(self, sources: Iterable[str], stdin: LineStream | None = None) -> None:
        self.sources = list(sources)
        self._stdin = stdin
        self._spool: IO[bytes] | None = None
        self._tee: _Tee | None = None

    def __enter__(self) -> Replayable:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._spool is not None:
            self._spool.close()

    def lines(self) -> Iterator[SourceLine]:
        """Every line from the start (as ``record_lines`` with ``blank``); raises
        :class:`AuditError` naming a file that cannot be read."""
        if STDIN not in self.sources:
            return record_lines(self.sources, blank=True)
        if self._tee is None:
            self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
            self._tee = _Tee(self._stdin or sys.stdin.buffer, self._spool)
            return record_lines(self.sources, self._tee, blank=True)
        self._tee.drain()  # what an earlier pass did not read, if it stopped early
        assert self._spool is not None
        self._spool.seek(0)
        return record_lines(self.sources, self._spool, blank=True)


__all__ = ["STDIN", "Replayable", "SourceLine", "record_lines", "strip_prefix"]
