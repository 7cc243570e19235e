"""The README's quick start and "The gateway without a cluster", run as written in a fresh copy.

The commands are read from README.md's ```sh blocks of those two sections at test time, so the
README cannot drift from what works. They run in bash in a copy of the working tree (every
file git tracks, as a fresh clone has them), with two changes only, both forced by the shared
test machine: ports are free ones instead of 8080/9000/9901/9902 (8080 is rewritten in the text,
``remit dev``'s own ports come from its REMIT_DEV_* variables), and ``make test`` is not run
(it is this suite). ``.venv`` is this test run's environment, linked in, so ``make`` finds it
installed instead of installing it again.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import orjson

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def section(readme: str, title: str) -> list[str]:
    """The ```sh blocks of the section headed ``## title``."""
    start = readme.index(f"\n## {title}\n")
    end = readme.find("\n## ", start + 1)
    body = readme[start : end if end > 0 else None]
    return re.findall(r"```sh\n(.*?)```", body, flags=re.DOTALL)


def commands(block: str) -> list[str]:
    """Logical shell commands: continuation lines joined."""
    out, current = [], ""
    for line in block.splitlines():
        current += line + "\n"
        if not line.rstrip().endswith("\\"):
            if current.strip():
                out.append(current.rstrip())
            current = ""
    return out


def fresh_copy(target: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / name.decode()
        if source.is_file():
            (target / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            (target / name.decode()).write_bytes(source.read_bytes())
    (target / ".venv").symlink_to(Path(sys.prefix))
    os.utime(target / "pyproject.toml", (0, 0))  # older than .venv/.installed: make skips pip
    return target


def script(readme: str, upstream: int) -> tuple[str, list[str]]:
    """The bash script, and what each checked command's comment expects (exit code)."""
    lines, expected = ["set -u"], []
    for title in ("Quick start", "The gateway without a cluster"):
        blocks = section(readme, title)
        assert blocks, f"README has no sh block under {title!r}"
        for command in commands("\n".join(blocks)):
            if command.startswith("make test"):
                continue  # the whole suite: this test is part of it
            runnable = command.replace("8080", str(upstream))
            lines.append(runnable)
            if re.search(r"&\s*(#.*)?$", runnable) or runnable.startswith(". "):
                continue
            exit_code = re.search(r"exit (\d)", runnable)
            expected.append(exit_code.group(1) if exit_code else "0")
            lines.append(f'echo "::exit $? {len(expected) - 1}"')
    return "\n".join(lines) + "\n", expected


def test_quick_start_and_gateway_without_a_cluster_work_as_written(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    clone = fresh_copy(tmp_path / "remit")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    text, expected = script(readme, free_port())
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "TMPDIR": str(scratch),
        "REMIT_DEV_STATE": str(tmp_path / "dev-state"),
        "REMIT_DEV_LISTEN": f"127.0.0.1:{free_port()}",
        "REMIT_DEV_ADMIN_LISTEN": f"127.0.0.1:{free_port()}",
        "REMIT_DEV_ISSUER_LISTEN": f"127.0.0.1:{free_port()}",
    }
    process = subprocess.Popen(
        ["bash", "-c", text],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=180)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # anything the script left running
        process.wait()
    codes = re.findall(r"^::exit (\d+) (\d+)$", output, flags=re.MULTILINE)
    assert [int(i) for _, i in codes] == list(range(len(expected))), output
    assert [code for code, _ in codes] == expected, output
    assert "Every decision was as expected." in output  # make demo
    assert "ALLOWED alice's notes" in output
    assert re.search(
        r"DENIED +error -32602: Unknown tool: delete_file \(decision record \w+\)", output
    )
    assert "MCP URL:  http://127.0.0.1:" in output
    assert "remit gateway: serving agents/files at" in output
    assert "OK " in output  # remit audit verify
    records = (clone / "remit-dev.audit.jsonl").read_bytes().splitlines()
    decisions = [orjson.loads(r) for r in records if b'"decision"' in r]
    assert any(d.get("tool") == "read_file" and d.get("decision") == "allow" for d in decisions)
    assert list(scratch.iterdir()) == []  # the demo and remit dev removed what they made
