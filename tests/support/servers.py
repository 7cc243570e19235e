"""Real servers on loopback for tests: the demo MCP files server and the gateway proxy.

The files server runs as a subprocess (as it would in a pod); the proxy runs in-process on
its own thread so tests can hand it hook objects and inspect what they recorded.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from remit.gateway.background import BackgroundServer
from remit.gateway.hooks import GatewayHooks
from remit.gateway.ports import wait_for_port
from remit.gateway.proxy import McpProxy, ProxySettings
from remit.gateway.runner import ListenerSettings
from remit.gateway.upstream import UpstreamSettings
from tests.support.ports import free_port


@contextmanager
def files_server(*, json_response: bool = False, stateless: bool = False) -> Iterator[str]:
    """Run the demo files server; yields its MCP URL."""
    port = free_port()
    argv = [sys.executable, "-m", "remit.demo.files_server", "--port", str(port)]
    argv += ["--json-response"] * json_response + ["--stateless"] * stateless
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port, 20)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def proxy_server(
    upstream_url: str,
    hooks: GatewayHooks,
    *,
    max_body_bytes: int = 4 * 1024 * 1024,
    response_timeout: float = 30.0,
) -> Iterator[str]:
    """Run the gateway proxy in front of ``upstream_url``; yields its MCP URL."""
    settings = ProxySettings(
        upstream=UpstreamSettings(
            upstream_url, connect_timeout=2.0, response_timeout=response_timeout
        ),
        max_body_bytes=max_body_bytes,
    )
    server = BackgroundServer(McpProxy(settings, hooks), ListenerSettings(port=free_port()))
    server.start()
    try:
        yield f"{server.url}/mcp"
    finally:
        server.stop()
