"""``remit gateway``: run the gateway standalone (-f DIR) or as a sidecar (REMIT_* env)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
import uvloop

from remit.cli.common import fail
from remit.errors import RemitError
from remit.gateway.app import Gateway
from remit.gateway.logs import log_to_stderr
from remit.gateway.serve import build_standalone, run
from remit.gateway.settings import Address, from_environment


def gateway(
    files: Annotated[
        list[Path] | None,
        typer.Option("--filename", "-f", help="Policy directory: standalone mode (no operator)."),
    ] = None,
    upstream: Annotated[
        str | None, typer.Option(help="MCP server URL, e.g. http://127.0.0.1:8080/mcp.")
    ] = None,
    server: Annotated[
        str | None, typer.Option("--server", "-s", help="MCPServer name (standalone).")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="MCPServer namespace.")
    ] = None,
    listen: Annotated[str | None, typer.Option(help="host:port for MCP clients.")] = None,
    admin_listen: Annotated[str | None, typer.Option(help="host:port of the admin API.")] = None,
    audit_file: Annotated[
        Path | None, typer.Option(help="Write decision records to this file (else stdout).")
    ] = None,
    public_key: Annotated[
        Path | None, typer.Option(help="Bundle verification key (sidecar mode).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="Log level for stderr.")] = "WARNING",
) -> None:
    """Run the gateway. Decision records go to stdout (or --audit-file); logs to stderr."""
    log_to_stderr(log_level, "%(asctime)s %(levelname)s %(message)s")
    try:
        settings = from_environment()
        changes: dict[str, object] = {}
        if upstream:
            changes["upstream"] = upstream
        if listen:
            changes["listen"] = Address.parse(listen, "--listen")
        if admin_listen:
            changes["admin_listen"] = Address.parse(admin_listen, "--admin-listen")
        if public_key:
            changes["public_key"] = public_key
        if audit_file:
            changes["audit"] = dataclasses.replace(settings.audit, sink="file", path=audit_file)
        if files:
            changes["policy_dirs"] = tuple(files)
        settings = dataclasses.replace(settings, **changes)  # type: ignore[arg-type]
        if settings.policy_dirs:
            if not server:
                fail("standalone mode (-f) needs --server NAME")
            built = build_standalone(settings, server, namespace)
        else:
            if settings.public_key is None:
                fail("sidecar mode needs REMIT_BUNDLE_PUBLIC_KEY or --public-key (or use -f DIR)")
            built = Gateway(settings)
    except RemitError as exc:
        fail(str(exc))
    try:
        uvloop.run(run(built))
    except RemitError as exc:  # a port in use, an audit file that cannot be opened
        fail(str(exc), code=1)
