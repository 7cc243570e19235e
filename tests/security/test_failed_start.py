"""A ``remit gateway`` that cannot start says why in one line and exits non-zero.

Real processes, both entry points (standalone ``-f`` with flags, the sidecar with only
``REMIT_*`` variables): a port in use, a key that cannot be read, a malformed setting, an audit
file that cannot be opened, and more connections than the file-descriptor limit allows. The
standard error holds exactly one line, it names the problem, and no traceback.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from remit.policy.signing import generate_key, save_key
from tests.support import stack


@pytest.fixture
def taken() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as sock:
        sock.bind((stack.HOST, 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def upstream() -> Iterator[str]:
    """An upstream that accepts connections: a standalone start gets past its reachability check."""
    with socket.socket() as sock:
        sock.bind((stack.HOST, 0))
        sock.listen()
        yield f"http://{stack.HOST}:{sock.getsockname()[1]}/mcp"


@pytest.fixture
def public_key(tmp_path: Path) -> Path:
    path = tmp_path / "bundle.pub.json"
    save_key(generate_key(), path, private=False)
    return path


def _run(
    args: list[str], env: dict[str, str], preexec: object = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REMIT_")}
    return subprocess.run(
        [stack.REMIT, "gateway", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=stack.REPO,
        preexec_fn=preexec,  # type: ignore[arg-type]
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def _sidecar_env(key: Path, listen: int, admin: int) -> dict[str, str]:
    return {
        "REMIT_BUNDLE_PUBLIC_KEY": str(key),
        "REMIT_SERVER": "agents/files",
        "REMIT_LISTEN": f"{stack.HOST}:{listen}",
        "REMIT_ADMIN_LISTEN": f"{stack.HOST}:{admin}",
    }


def test_standalone_with_the_mcp_port_in_use(taken: int, upstream: str, tmp_path: Path) -> None:
    args = ["-f", str(stack.EXAMPLES), "--server", "files", "--namespace", "agents"]
    args += ["--upstream", upstream]
    args += [
        "--listen",
        f"{stack.HOST}:{taken}",
        "--admin-listen",
        f"{stack.HOST}:{stack.free_port()}",
    ]
    args += ["--audit-file", str(tmp_path / "audit.jsonl")]
    result = _run(args, {})
    assert result.returncode == 1
    line = _one_line(result)
    assert f"--listen): cannot listen on {stack.HOST}:{taken}" in line
    assert "Address already in use" in line
    assert not (tmp_path / "audit.jsonl").exists(), "nothing is recorded by a start that failed"


def test_sidecar_with_the_admin_port_in_use(taken: int, public_key: Path) -> None:
    result = _run([], _sidecar_env(public_key, stack.free_port(), taken))
    assert result.returncode == 1
    line = _one_line(result)
    assert "REMIT_ADMIN_LISTEN" in line
    assert "Address already in use" in line


@pytest.mark.parametrize("kind", ["directory", "missing", "not-a-key"])
def test_sidecar_with_a_key_that_cannot_be_read(tmp_path: Path, kind: str) -> None:
    key = {"directory": tmp_path, "missing": tmp_path / "nope.jwk", "not-a-key": tmp_path / "k"}[
        kind
    ]
    if kind == "not-a-key":
        key.write_text("{}")
    result = _run([], _sidecar_env(key, stack.free_port(), stack.free_port()))
    assert result.returncode == 2
    line = _one_line(result)
    assert str(key) in line
    assert "key" in line


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("REMIT_HEADER_TIMEOUT_SECONDS", "soon"),
        ("REMIT_BODY_TIMEOUT_SECONDS", "-1"),
        ("REMIT_MAX_CONNECTIONS", "0"),
        ("REMIT_MAX_HEADERS", "many"),
        ("REMIT_MAX_BUNDLE_AGE_SECONDS", "old"),
        ("REMIT_LISTEN", "nonsense"),
    ],
)
def test_sidecar_with_a_malformed_setting(public_key: Path, setting: str, value: str) -> None:
    env = {**_sidecar_env(public_key, stack.free_port(), stack.free_port()), setting: value}
    result = _run([], env)
    assert result.returncode == 2
    line = _one_line(result)
    assert setting in line
    assert repr(value) in line


def test_standalone_with_an_audit_file_that_cannot_be_opened(upstream: str, tmp_path: Path) -> None:
    audit = tmp_path / "missing-dir" / "audit.jsonl"
    args = ["-f", str(stack.EXAMPLES), "--server", "files", "--namespace", "agents"]
    args += ["--upstream", upstream]
    args += ["--listen", f"{stack.HOST}:{stack.free_port()}"]
    args += ["--admin-listen", f"{stack.HOST}:{stack.free_port()}", "--audit-file", str(audit)]
    result = _run(args, {})
    assert result.returncode == 1
    line = _one_line(result)
    assert f"cannot open audit file {audit}" in line


def test_more_connections_than_file_descriptors_allow(public_key: Path) -> None:
    env = {
        **_sidecar_env(public_key, stack.free_port(), stack.free_port()),
        "REMIT_MAX_CONNECTIONS": "5000",
    }
    result = _run([], env, preexec=stack.descriptor_limit(512))
    assert result.returncode == 1
    line = _one_line(result)
    assert "REMIT_MAX_CONNECTIONS" in line
    assert "ulimit -n" in line
    assert "512" in line


def test_a_sidecar_that_does_not_know_its_server_refuses_to_start(public_key: Path) -> None:
    env = _sidecar_env(public_key, stack.free_port(), stack.free_port())
    del env["REMIT_SERVER"]
    entry = _run([], env)  # the injected sidecar: REMIT_* only
    args = ["--public-key", str(public_key), "--listen", env["REMIT_LISTEN"]]
    args += ["--admin-listen", env["REMIT_ADMIN_LISTEN"]]
    flags = _run(args, {})  # the CLI in sidecar mode
    for result in (entry, flags):
        assert result.returncode == 2
        assert "REMIT_SERVER" in _one_line(result)
