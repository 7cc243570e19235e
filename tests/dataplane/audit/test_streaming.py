"""``remit audit verify`` streams a log: memory stays bounded whatever its length, and standard
input is read again (from a copy that moves to disk) only when a second pass is needed."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from remit.audit import reading
from remit.audit.lines import seal
from remit.audit.reading import Replayable
from remit.audit.records import GENESIS, ChainRecord
from remit.cli.audit import audit_app
from tests.dataplane.audit.helpers import NOW, allowed_by_consent

RECORDS = 30_000
MiB = 1024 * 1024


def _long_log(path: Path, count: int) -> str:
    """A chain of ``count`` decision records after a genesis marker; its head."""
    start = ChainRecord(
        id="genesis", time=NOW.isoformat(), server="agents/files", pod="files-7d9f",
        start="genesis", message="",
    )  # fmt: skip
    entry = seal(start, GENESIS)
    decision = allowed_by_consent()
    with path.open("wb") as out:
        out.write(entry.line)
        for n in range(count):
            entry = seal(msgspec.structs.replace(decision, id=f"r{n:08d}"), entry.hash)
            out.write(entry.line)
    return entry.hash


def test_verify_streams_a_long_log_in_bounded_memory(tmp_path: Path) -> None:
    short = tmp_path / "short.jsonl"
    runner = CliRunner()
    warm = runner.invoke(audit_app, ["verify", str(short), "--head", _long_log(short, 10)])
    assert warm.exit_code == 0, warm.output  # first use: imports and caches, not the log
    log = tmp_path / "decisions.jsonl"
    head = _long_log(log, RECORDS)
    assert log.stat().st_size > 25 * MiB
    tracemalloc.start()
    try:
        result = runner.invoke(audit_app, ["verify", str(log), "--head", head])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0, result.output
    assert f"OK intact: {RECORDS + 1} records in 1 segment(s)" in result.output
    assert peak < 2 * MiB, f"verify held {peak / MiB:.1f} MiB for a {RECORDS}-record log"


def test_standard_input_is_read_again_from_its_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reading, "SPOOL_BYTES", 64)  # the copy goes to disk at once
    text = b"".join(b'{"n": %d}\n' % n for n in range(1, 201))
    with Replayable(["-"], io.BytesIO(text)) as source:
        first = source.lines()
        assert [next(first).line for _ in range(3)] == [b'{"n": 1}', b'{"n": 2}', b'{"n": 3}']
        again = list(source.lines())  # the first pass stopped early: the rest is read too
        assert [(s.source, s.number) for s in again[:2]] == [("-", 1), ("-", 2)]
        assert b"".join(s.line + b"\n" for s in again) == text
        assert len(list(source.lines())) == 200  # and as often as needed
