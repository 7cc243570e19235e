"""Following a decision log as it grows (``remit audit tail --follow``), across log rotation.

A sidecar's log file is appended to line by line and rotated by whatever keeps logs: renamed
away and replaced by a new file (logrotate's ``create``, the kubelet's container logs), or
copied and truncated in place (``copytruncate``). :func:`follow` yields each complete line
appended after it started, once and in order, through both:

- a line arrives in pieces: it is yielded once its ``\\n`` is there (bounded by
  ``MAX_LINE_BYTES``; a longer one is an :class:`AuditError`, never read into memory whole);
- the file is replaced: what was still appended to the old file is read to its end, then the
  new file from its start (line numbers start again at 1); a path missing for a while (between
  the rename and the new file) is waited for;
- the file shrinks below what was read (truncated in place): it is read again from its start;
- a line the writer never finished before either happened is yielded on its own as it is (it
  is not a record, and tail skips it), never glued to the next file's first line.

It polls every ``interval`` seconds when there is nothing new; ``sleep`` is injectable so tests
drive a real file through these cases without waiting.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from remit.audit import reading
from remit.audit.reading import SourceLine, strip_prefix
from remit.errors import AuditError

Sleep = Callable[[float], None]


def _open(path: Path) -> BinaryIO | None:
    try:
        return path.open("rb")
    except OSError:
        return None


def _replacement(path: Path, stream: BinaryIO | None) -> BinaryIO | None:
    """The file now at ``path`` if it is not the one ``stream`` reads (None: the same, or none)."""
    try:
        now = path.stat()
    except OSError:
        return None
    if stream is not None:
        held = os.fstat(stream.fileno())
        if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            return None
    return _open(path)


def follow(path: Path, *, interval: float = 0.5, sleep: Sleep = time.sleep) -> Iterator[SourceLine]:
    """Lines appended to ``path`` from now on (see the module docstring)."""
    limit = reading.MAX_LINE_BYTES
    stream = _open(path)
    if stream is not None:
        stream.seek(0, os.SEEK_END)
    pending: BinaryIO | None = None  # the new file, read once the old one is drained
    number = 0
    partial = b""
    try:
        while True:
            chunk = stream.readline(limit + 1 - len(partial)) if stream is not None else b""
            if chunk:
                partial += chunk
                if not partial.endswith(b"\n"):
                    if len(partial) > limit:
                        raise AuditError(f"{path}:{number + 1}: line longer than {limit} bytes")
                    continue
                number += 1
                line, partial = strip_prefix(partial), b""
                if line:
                    yield SourceLine(str(path), number, line)
                continue
            # At the end of what this file holds: was it replaced, or truncated?
            if pending is None:
                pending = _replacement(path, stream)
                if pending is not None and stream is not None:
                    continue  # first read what reached the old file meanwhile, then switch
            truncated = (
                pending is None
                and stream is not None
                and os.fstat(stream.fileno()).st_size < stream.tell()
            )
            if pending is not None or truncated:
                if partial.strip():  # never finished: on its own, not glued to the next line
                    number += 1
                    yield SourceLine(str(path), number, strip_prefix(partial))
                partial, number = b"", 0
                if pending is not None:
                    if stream is not None:
                        stream.close()
                    stream, pending = pending, None
                elif stream is not None:
                    stream.seek(0)
                continue
            sleep(interval)
    finally:
        for held in (stream, pending):
            if held is not None:
                held.close()


__all__ = ["follow"]
