"""The assembled gateway as real processes on loopback: issuer, MCP server, ``remit gateway``.

End-to-end tests and the benchmark start each piece the way a user would: the MCP server
(``tests.support.upstreams``, which records what reached it) and the gateway
(``remit gateway``) as subprocesses, the demo OIDC issuer on a thread. ``Process`` waits for
a port (a gateway: for its "serving" line, since its ports accept connections into their
backlog from the start) with a timeout and, when a process dies or never gets there, raises
with its stderr so a failing fixture explains itself. ``write_policy_dir`` writes the YAML a
user would apply.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import httpx
import orjson

from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
REMIT = str(Path(sys.executable).parent / "remit")
HOST = "127.0.0.1"
DISCOVERY_AGENT = "remit-gateway"
#: The line ``remit gateway`` prints on stderr once started (``cli/gateway_start.py``).
SERVING = "remit gateway: serving "


class ProcessError(RuntimeError):
    """A test process exited or never listened; the message carries its stderr."""


@dataclass
class Process:
    """A subprocess whose stderr goes to a file (read back when something fails)."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(
        cls,
        name: str,
        argv: Sequence[str],
        log_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        stdout: Any = subprocess.DEVNULL,
        stderr: Any = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> Process:
        """Start ``argv`` from the repository root with ``env`` added to this environment.

        stderr goes to a log file unless ``stderr`` says otherwise (then ``stderr()`` is empty).
        """
        log = log_dir / f"{name}.stderr"
        with log.open("wb") as log_file:
            popen = subprocess.Popen(
                list(argv),
                cwd=REPO,
                env={**os.environ, **(env or {})},
                stdout=stdout,
                stderr=log_file if stderr is None else stderr,
                preexec_fn=preexec_fn,  # noqa: PLW1509 - only resource limits, no threads yet
            )
        return cls(name, popen, log)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stderr(self) -> str:
        """What the process wrote to stderr so far (its start and end if long)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return text if len(text) <= 6000 else f"{text[:3000]}\n[...]\n{text[-3000:]}"

    def wait_for_port(self, port: int, timeout: float = 20.0) -> None:
        """Block until ``port`` accepts connections; ``ProcessError`` if the process dies."""
        import socket  # noqa: PLC0415 - only here

        deadline = time.monotonic() + timeout
        while True:
            code = self.popen.poll()
            if code is not None:
                raise ProcessError(f"{self.name} exited with {code}:\n{self.stderr()}")
            try:
                with socket.create_connection((HOST, port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise ProcessError(
                        f"{self.name} did not listen on {port} in {timeout:g}s:\n{self.stderr()}"
                    ) from None
                time.sleep(0.02)

    def wait_for_line(self, start: str, timeout: float = 20.0) -> None:
        """Block until a line of stderr starts with ``start``; ``ProcessError`` with the stderr
        if the process exits first or the line does not come in ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                text = self.log.read_text(errors="replace")
            except OSError:
                text = ""
            if any(line.startswith(start) for line in text.splitlines()):
                return
            code = self.popen.poll()
            if code is not None:
                raise ProcessError(f"{self.name} exited with {code}:\n{self.stderr()}")
            if time.monotonic() > deadline:
                self.stop()
                raise ProcessError(
                    f"{self.name} did not print {start!r} in {timeout:g}s:\n{self.stderr()}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        """Terminate (then kill) the process and wait for it."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


@dataclass
class Upstream:
    """A recording MCP server process."""

    process: Process
    port: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/mcp"

    def requests(self) -> list[dict[str, Any]]:
        """Every HTTP request that reached the server, oldest first."""
        answer = httpx.get(f"http://{HOST}:{self.port}/__requests", timeout=5)
        answer.raise_for_status()
        requests: list[dict[str, Any]] = answer.json()
        return requests

    def forwarded(self) -> list[dict[str, Any]]:
        """The requests forwarded for clients: without the gateway's own tool discovery
        (``X-Remit-Agent: remit-gateway``, sent when a call names a tool it has not seen)."""
        requests = self.requests()
        discovery = {
            r["headers"].get("mcp-session-id")
            for r in requests
            if r["headers"].get("x-remit-agent") == DISCOVERY_AGENT
        } - {None}
        return [
            r
            for r in requests
            if r["headers"].get("x-remit-agent") != DISCOVERY_AGENT
            and r["headers"].get("mcp-session-id") not in discovery  # its closing DELETE
        ]

    def count(self) -> int:
        """How many client requests reached the server."""
        return len(self.forwarded())

    def calls(self, method: str) -> list[dict[str, Any]]:
        """The requests whose JSON-RPC body (or one element of it) has ``method``."""
        found = []
        for request in self.forwarded():
            rpc = request["rpc"]
            messages = rpc if isinstance(rpc, list) else [rpc]
            if any(isinstance(m, dict) and m.get("method") == method for m in messages):
                found.append(request)
        return found


@dataclass
class GatewayProcess:
    """A ``remit gateway`` process: MCP URL, admin URL and its decision log."""

    process: Process
    port: int
    admin_port: int
    audit_file: Path | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/mcp"

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def admin(self) -> str:
        return f"http://{HOST}:{self.admin_port}"

    def records(self) -> list[dict[str, Any]]:
        """Every record in the decision log so far."""
        if self.audit_file is None or not self.audit_file.exists():
            return []
        lines = self.audit_file.read_bytes().splitlines()
        return [orjson.loads(line) for line in lines if line.strip()]

    def record(self, record_id: str) -> dict[str, Any]:
        """The record with ``record_id`` (KeyError if absent)."""
        for record in self.records():
            if record.get("id") == record_id:
                return record
        raise KeyError(record_id)

    def metrics(self) -> str:
        """The Prometheus text from the admin port."""
        return httpx.get(f"{self.admin}/metrics", timeout=5).text


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of sample ``name`` with exactly these labels in Prometheus text (0 if absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        sample, _, value = line.rpartition(" ")
        label_part = sample[len(name) :]
        if label_part.startswith("{"):
            found = ",".join(sorted(label_part.strip("{}").split(",")))
        elif label_part == "":
            found = ""
        else:
            continue
        if found == wanted:
            return float(value)
    return 0.0


def server_yaml(
    issuer: str,
    audience: str,
    *,
    name: str = "files",
    tool_pinning: str = "Enforce",
    scopes: Sequence[str] = ("mcp:tools",),
) -> str:
    """An MCPServer document whose tokens come from ``issuer`` for ``audience``."""
    return f"""\
apiVersion: remit.dev/v1alpha1
kind: MCPServer
metadata: {{name: {name}, namespace: agents}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  authentication:
    issuer: {issuer}
    audience: {audience}
    requiredScopes: [{", ".join(scopes)}]
  toolPinning: {tool_pinning}
"""


def write_policy_dir(
    path: Path,
    server: str,
    *,
    examples: bool = True,
    extra: Mapping[str, str] | None = None,
) -> Path:
    """A policy directory: the MCPServer ``server``, the examples' policies and grants, and
    ``extra`` files (name → YAML)."""
    path.mkdir(parents=True, exist_ok=True)
    if examples:
        shutil.copy(EXAMPLES / "policies.yaml", path / "policies.yaml")
        shutil.copy(EXAMPLES / "grants.yaml", path / "grants.yaml")
    (path / "server.yaml").write_text(server)
    for name, text in (extra or {}).items():
        (path / name).write_text(text)
    return path


@contextmanager
def upstream(
    log_dir: Path,
    *,
    kind: str = "files",
    json_response: bool = False,
    stateless: bool = False,
    audit_file: Path | None = None,
) -> Iterator[Upstream]:
    """Run a recording MCP server (``files`` or ``flip``); with ``audit_file`` (the log of the
    one gateway in front of it) each request records the log's size when it arrived."""
    port = free_port()
    argv = [sys.executable, "-m", "tests.support.upstreams", "--kind", kind, "--port", str(port)]
    argv += ["--json-response"] * json_response + ["--stateless"] * stateless
    if audit_file is not None:
        argv += ["--audit-file", str(audit_file)]
    process = Process.start(f"upstream-{kind}-{port}", argv, log_dir)
    try:
        process.wait_for_port(port)
        yield Upstream(process, port)
    finally:
        process.stop()


def reserve_gateway_ports() -> tuple[int, int]:
    """Ports for a gateway's MCP and admin listeners (the audience must name the first)."""
    return free_port(), free_port()


def audience_for(port: int) -> str:
    """The RFC 8707 resource identifier of a gateway on ``port``."""
    return f"http://{HOST}:{port}/mcp"


def file_size_limit(limit: int) -> Callable[[], None]:
    """A preexec function capping the size of files the process writes (RLIMIT_FSIZE).

    Python ignores SIGXFSZ, so a write past the limit fails with EFBIG: an audit file that
    "becomes unwritable" once it holds ``limit`` bytes.
    """

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def descriptor_limit(limit: int) -> Callable[[], None]:
    """A preexec function capping the process's open file descriptors (RLIMIT_NOFILE)."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return apply


@contextmanager
def tiny_filesystem(mount: Path, size: str = "64k") -> Iterator[Path]:
    """A real tmpfs of ``size`` mounted at ``mount`` (a disk that fills); needs root.

    Skips the calling test when it cannot mount (not root, no permission), saying why, unless
    ``REMIT_REQUIRE_TMPFS=1`` (CI, which runs as root) makes it fail.
    """
    import pytest  # noqa: PLC0415 - only tests call this

    def cannot(why: str) -> NoReturn:
        if os.environ.get("REMIT_REQUIRE_TMPFS"):
            pytest.fail(f"REMIT_REQUIRE_TMPFS=1 but {why}")
        pytest.skip(why)

    mount.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        cannot("mounting a tmpfs needs root")
    options = f"size={size},mode=0700"
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        cannot(f"cannot mount a tmpfs: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)


@contextmanager
def gateway(
    log_dir: Path,
    *,
    upstream_url: str,
    ports: tuple[int, int] | None = None,
    policy_dir: Path | None = None,
    server: str = "files",
    audit_file: Path | None = None,
    public_key: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdout: Any = subprocess.DEVNULL,
    stderr: Any = None,
    preexec_fn: Callable[[], None] | None = None,
) -> Iterator[GatewayProcess]:
    """Run ``remit gateway``: standalone with ``policy_dir``, else sidecar with ``public_key``."""
    port, admin_port = ports or reserve_gateway_ports()
    argv = [REMIT, "gateway", "--upstream", upstream_url]
    argv += ["--listen", f"{HOST}:{port}", "--admin-listen", f"{HOST}:{admin_port}"]
    if policy_dir is not None:
        argv += ["-f", str(policy_dir), "--server", server]
    if public_key is not None:
        argv += ["--public-key", str(public_key)]
    if audit_file is not None:
        argv += ["--audit-file", str(audit_file)]
    process = Process.start(
        f"gateway-{port}", argv, log_dir, env=env, stdout=stdout, stderr=stderr,
        preexec_fn=preexec_fn,
    )  # fmt: skip
    try:
        if stderr is None:  # its log: serving once it says so (its ports listen from the start)
            process.wait_for_line(SERVING)
        else:
            process.wait_for_port(port)
            process.wait_for_port(admin_port)
        yield GatewayProcess(process, port, admin_port, audit_file)
    finally:
        process.stop()


@contextmanager
def standalone_gateway(
    log_dir: Path,
    issuer: Any,
    *,
    upstream_url: str,
    audit_file: Path,
    policy_name: str,
    subject: str,
    agent: str,
    preexec_fn: Callable[[], None] | None = None,
) -> Iterator[tuple[GatewayProcess, str]]:
    """A standalone gateway with the standard test policy for ``issuer`` (a
    ``remit.demo.issuer.Issuer``) in ``log_dir/policy_name``, and a token for
    (``subject``, ``agent``) with the ``mcp:tools`` scope."""
    ports = reserve_gateway_ports()
    audience = audience_for(ports[0])
    policy = write_policy_dir(log_dir / policy_name, server_yaml(issuer.issuer, audience))
    with gateway(
        log_dir,
        upstream_url=upstream_url,
        ports=ports,
        policy_dir=policy,
        audit_file=audit_file,
        preexec_fn=preexec_fn,
    ) as running:
        yield running, issuer.mint(subject, agent=agent, audience=audience, scopes=["mcp:tools"])
