"""Reading decision records back from wherever they were gathered: files, standard input, or
``kubectl logs`` output (``--prefix`` puts ``[pod/NAME/CONTAINER] `` before each line,
``--timestamps`` an RFC 3339 time), from one sidecar or many interleaved.

:func:`record_lines` yields each line with its prefix removed and where it came from, and
drops the lines that are not records at all (the sidecar's own log output) only when asked:
a damaged record must never be silently skipped by a verifier.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from remit.errors import AuditError

STDIN = "-"
#: Longest line read as one record; longer lines are reported, not read into memory whole.
MAX_LINE_BYTES = 4 * 1024 * 1024
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


def _lines(stream: BinaryIO, source: str) -> Iterator[SourceLine]:
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
    sources: Iterable[str], stdin: BinaryIO | None = None, *, blank: bool = False
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


__all__ = ["STDIN", "SourceLine", "record_lines", "strip_prefix"]
