"""The gateway fixture (``tests/support/stack.py``) waits for ``remit gateway``'s "serving"
line, not a connect: its ports accept connections into their backlog from the start, so a
gateway whose start then fails must still fail the fixture at once, with its stderr."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from remit.policy.signing import generate_key, save_key
from tests.support import stack


def test_a_gateway_whose_start_fails_after_listening_fails_the_fixture_with_its_stderr(
    tmp_path: Path,
) -> None:
    public = tmp_path / "bundle-key.pub.json"
    save_key(generate_key(), public, private=False)
    began = time.monotonic()
    with (
        pytest.raises(stack.ProcessError, match=r"(?s)exited with 1:.*cannot start the gateway"),
        stack.gateway(
            tmp_path,
            upstream_url="http://127.0.0.1:9/mcp",
            public_key=public,
            audit_file=tmp_path,  # a directory: the audit file cannot be opened
            env={"REMIT_SERVER": "agents/files"},
        ),
    ):
        pytest.fail("the fixture yielded a gateway that did not start")
    assert time.monotonic() - began < 15
