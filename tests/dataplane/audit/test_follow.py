"""``remit audit tail --follow`` on a real file that is appended to, rotated and truncated.

The follower's poll (``sleep``) is where each test's writer acts, so every case runs on a real
file without waiting: lines arrive in pieces, the file is renamed away and replaced (with a last
line still written to the old one), truncated in place, or missing for a while.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from remit.audit import open_chain, reading
from remit.audit.follow import follow
from remit.audit.reading import SourceLine
from remit.cli import audit_search
from remit.cli.audit import audit_app
from remit.errors import AuditError
from tests.dataplane.audit.helpers import allowed_by_consent, clock, denied, file_settings


class _WriterDoneError(Exception):
    """The writer has nothing more to do."""


def _writer(*steps: Callable[[], None]) -> Callable[[float], None]:
    """A ``sleep`` that runs the next step at each poll, and ends the test after the last."""
    queue = list(steps)

    def sleep(seconds: float) -> None:
        assert seconds == 0.5  # the default poll interval was asked for
        if not queue:
            raise _WriterDoneError
        queue.pop(0)()

    return sleep


def _append(path: Path, data: bytes) -> Callable[[], None]:
    def write() -> None:
        with path.open("ab") as out:
            out.write(data)

    return write


def _seen(lines: Iterator[SourceLine]) -> list[tuple[int, bytes]]:
    found = []
    try:
        for item in lines:
            found.append((item.number, item.line))
    except _WriterDoneError:
        return found
    raise AssertionError("the follower stopped by itself")


def test_only_new_lines_each_once_complete(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    log.write_bytes(b'{"old": 1}\n')
    sleep = _writer(
        _append(log, b'{"a": 1}\n{"b"'),  # a line in two writes
        _append(log, b": 2}\n\n"),
        lambda: None,  # a quiet poll
        _append(log, b'[pod/files-1/remit-gateway] {"c": 3}\n'),  # kubectl's prefix removed
    )
    assert _seen(follow(log, sleep=sleep)) == [
        (1, b'{"a": 1}'),
        (2, b'{"b": 2}'),
        (4, b'{"c": 3}'),
    ]


def test_a_rotated_file_is_read_to_its_end_then_the_new_one_from_its_start(
    tmp_path: Path,
) -> None:
    log = tmp_path / "audit.jsonl"
    log.write_bytes(b"")
    old = tmp_path / "audit.jsonl.1"

    def rotate() -> None:
        log.rename(old)  # the writer still holds the old file ...
        _append(old, b'{"late": 1}\n{"torn"')()  # ... and finishes with a torn line

    sleep = _writer(
        _append(log, b'{"a": 1}\n'),
        rotate,
        lambda: None,  # the path is missing for a while
        _append(log, b'{"new": 1}\n'),  # the writer reopened: a new file
        _append(log, b'{"new": 2}\n'),
    )
    assert _seen(follow(log, sleep=sleep)) == [
        (1, b'{"a": 1}'),
        (2, b'{"late": 1}'),
        (3, b'{"torn"'),  # on its own, not glued to the new file's first line
        (1, b'{"new": 1}'),
        (2, b'{"new": 2}'),
    ]


def test_a_file_truncated_in_place_is_read_again_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    log.write_bytes(b'{"before": 0}\n')

    def copytruncate() -> None:
        with log.open("r+b") as out:
            out.truncate(0)  # same file (inode), now shorter than what was read
        _append(log, b'{"x": 1}\n')()

    sleep = _writer(_append(log, b'{"a": 1}\n{"b": 2}\n'), copytruncate)
    inode = log.stat().st_ino
    assert _seen(follow(log, sleep=sleep)) == [(1, b'{"a": 1}'), (2, b'{"b": 2}'), (1, b'{"x": 1}')]
    assert log.stat().st_ino == inode


async def test_tail_follow_prints_records_written_after_it_through_a_rotation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, more = tmp_path / "audit.jsonl", tmp_path / "more.jsonl"
    for path, pod in ((log, "files-a"), (more, "files-b")):
        chain = await open_chain(file_settings(path), server="agents/files", pod=pod, clock=clock)
        await chain.append(msgspec.structs.replace(allowed_by_consent(), pod=pod))
        await chain.append(msgspec.structs.replace(denied(), pod=pod, id=f"denied-{pod}"))
        await chain.close()
    lines = more.read_bytes().splitlines(keepends=True)  # genesis, allow, deny of files-b

    def rotate() -> None:
        os.replace(log, tmp_path / "audit.jsonl.1")
        log.write_bytes(lines[2])

    steps = [_append(log, lines[1][:40]), _append(log, lines[1][40:]), rotate]

    def sleep(seconds: float) -> None:
        if not steps:
            raise KeyboardInterrupt  # Ctrl-C ends tail -f, exit 0
        steps.pop(0)()

    monkeypatch.setattr(audit_search, "_nap", sleep)
    result = CliRunner().invoke(
        audit_app, ["tail", str(log), "--follow", "-n", "1", "--decision", "deny", "--json"]
    )
    assert result.exit_code == 0, result.output
    printed = [msgspec.json.decode(line) for line in result.output.splitlines()]
    assert [(r["pod"], r["decision"]) for r in printed] == [
        ("files-a", "deny"),
        ("files-b", "deny"),
    ]
    assert printed[1]["id"] == "denied-files-b"


def test_a_line_longer_than_the_bound_is_refused_not_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reading, "MAX_LINE_BYTES", 16)
    log = tmp_path / "audit.jsonl"
    log.write_bytes(b"")
    lines = follow(log, sleep=_writer(_append(log, b"x" * 64)))
    with pytest.raises(AuditError, match=r"audit\.jsonl:1: line longer than 16 bytes"):
        next(lines)
