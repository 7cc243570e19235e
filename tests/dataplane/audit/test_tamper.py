"""Tamper detection: every kind of edit to a real log is caught at the right line."""

from __future__ import annotations

from pathlib import Path

import pytest

from remit.audit import verify_file, verify_lines
from tests.dataplane.audit.helpers import write_log


@pytest.fixture
async def lines(log_path: Path) -> list[bytes]:
    """A real log of 9 lines: a chain marker then 4 decision/outcome pairs."""
    await write_log(log_path, calls=4)
    return log_path.read_bytes().splitlines(keepends=True)


def verdict(lines: list[bytes], **options: object) -> str:
    result = verify_lines(lines, **options)  # type: ignore[arg-type]
    return "ok" if result.ok else result.message


def test_untouched_log_is_intact(lines: list[bytes]) -> None:
    assert verdict(lines) == "ok"


def test_edited_field_is_a_hash_mismatch(lines: list[bytes]) -> None:
    lines[3] = lines[3].replace(b'"decision":"allow"', b'"decision":"deny"')
    assert verdict(lines) == "line 4: hash mismatch (record edited)"


def test_added_field_is_refused(lines: list[bytes]) -> None:
    lines[3] = lines[3].replace(b'{"agent"', b'{"note":"x","agent"')
    assert verdict(lines).startswith("line 4: malformed record: Object contains unknown field")


def test_deleted_line_breaks_the_link(lines: list[bytes]) -> None:
    del lines[4]
    assert verdict(lines) == (
        "line 5: prev does not match line 4's hash (a line was deleted, inserted or reordered)"
    )


def test_reordered_lines_break_the_link(lines: list[bytes]) -> None:
    lines[5], lines[6] = lines[6], lines[5]
    assert verdict(lines).startswith("line 6: prev does not match line 5's hash")


def test_inserted_forged_line_breaks_the_link(lines: list[bytes]) -> None:
    lines.insert(3, lines[1])  # a replayed, self-consistent record
    assert verdict(lines).startswith("line 4: prev does not match line 3's hash")


def test_line_truncated_in_the_middle_is_not_json(lines: list[bytes]) -> None:
    lines[4] = lines[4][:40] + b"\n"
    assert verdict(lines) == "line 5: not valid JSON (a truncated or corrupted line)"


def test_cut_at_the_end_needs_the_expected_head(lines: list[bytes]) -> None:
    head = verify_lines(lines).head
    assert verdict(lines[:-2]) == "ok"
    assert "is not the expected head" in verdict(lines[:-2], expect_head=head)
    assert verdict(lines, expect_head=head) == "ok"


def test_rotated_log_verifies_only_as_partial(lines: list[bytes]) -> None:
    rest = lines[3:]
    assert verdict(rest).startswith("line 1: the log does not start a chain")
    result = verify_lines(rest, partial=True)
    assert result.ok
    assert result.anchor == verify_lines(lines[:3]).head


def test_other_output_is_skipped_only_when_asked(lines: list[bytes]) -> None:
    mixed = [b"INFO gateway listening on :9000\n", *lines[:3], b"[1, 2]\n", *lines[3:]]
    assert verdict(mixed) == "line 1: not valid JSON (a truncated or corrupted line)"
    result = verify_lines(mixed, skip_non_records=True)
    assert (result.ok, result.skipped, result.records) == (True, 2, 9)


def test_damaged_record_is_not_skipped_as_other_output(lines: list[bytes]) -> None:
    lines[2] = lines[2].replace(b'"status":200', b'"status":"200"')
    assert verdict(lines, skip_non_records=True).startswith("line 3: malformed record")


def test_empty_log_is_not_intact(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert verify_file(tmp_path / "empty.jsonl").message == "no records found"
