"""`make e2e` on a machine without Docker or kind: a clear message and a non-zero exit, never
a stack trace. (The cluster path itself needs Docker; this machine has none.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helm.chart import ROOT

SCRIPT = ROOT / "scripts" / "e2e.py"


def _run(path: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path}
    return subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, check=False
    )


def _fake(directory: Path, name: str, exit_code: int) -> None:
    tool = directory / name
    tool.write_text(f"#!/bin/sh\nexit {exit_code}\n")
    tool.chmod(0o755)


def test_missing_tools_are_named_with_how_to_install_them(tmp_path: Path) -> None:
    result = _run(str(tmp_path))
    assert result.returncode == 2
    assert "docker, kind, kubectl not found on PATH" in result.stderr
    assert "kind.sigs.k8s.io" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_only_the_missing_tool_is_named(tmp_path: Path) -> None:
    _fake(tmp_path, "docker", 0)
    _fake(tmp_path, "kubectl", 0)
    result = _run(str(tmp_path))
    assert result.returncode == 2
    assert "cannot run: kind not found on PATH" in result.stderr
    assert "docker" not in result.stderr.splitlines()[0]


def test_a_stopped_docker_daemon_is_reported_as_such(tmp_path: Path) -> None:
    for tool in ("kind", "kubectl"):
        _fake(tmp_path, tool, 0)
    _fake(tmp_path, "docker", 1)
    result = _run(str(tmp_path))
    assert result.returncode == 2
    assert "daemon does not answer" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_failing_step_names_the_command_without_a_traceback(tmp_path: Path) -> None:
    _fake(tmp_path, "docker", 0)
    _fake(tmp_path, "kubectl", 0)
    _fake(tmp_path, "kind", 3)
    result = _run(f"{tmp_path}:/usr/bin:/bin")
    assert result.returncode == 1
    assert "e2e: failed: `kind get clusters` exited 3" in result.stderr
    assert "Traceback" not in result.stderr
