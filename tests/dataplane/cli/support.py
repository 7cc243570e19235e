"""What the CLI tests share: reading a failed command's one-line error."""

from __future__ import annotations

import subprocess


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The command's only line on stderr (no traceback), which a test then reads."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]
