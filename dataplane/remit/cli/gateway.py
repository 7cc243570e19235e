"""``remit gateway`` in the full Typer app: run the gateway standalone (-f DIR) or as a
sidecar (REMIT_* env).

The console script does not come here: it parses ``remit gateway ...`` with argparse
(``gateway_args.py``, the same flags, compared by a test) so the gateway process never holds
Typer, Rich or pydantic. Both call ``gateway_start.start``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from remit.cli.gateway_args import GatewayFlags
from remit.cli.gateway_start import start, started_line, unreachable, with_flags


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
    log_level: Annotated[
        str | None, typer.Option(help="Log level for stderr [REMIT_LOG_LEVEL, else WARNING].")
    ] = None,
    max_connections: Annotated[
        int | None, typer.Option(help="Open client connections on the MCP port [1024].")
    ] = None,
    max_concurrent_requests: Annotated[
        int | None, typer.Option(help="MCP requests in progress at once; more get 503 [256].")
    ] = None,
    idle_timeout: Annotated[
        float | None, typer.Option(help="Seconds a connection may idle before a request [5].")
    ] = None,
    header_timeout: Annotated[
        float | None, typer.Option(help="Seconds from a request's first byte to its headers [10].")
    ] = None,
    body_timeout: Annotated[
        float | None, typer.Option(help="Seconds from the headers to the end of the body [30].")
    ] = None,
    max_header_bytes: Annotated[
        int | None, typer.Option(help="Bytes of request line and headers [32768].")
    ] = None,
    max_headers: Annotated[int | None, typer.Option(help="Request headers [100].")] = None,
    admin_max_connections: Annotated[
        int | None, typer.Option(help="Open connections on the admin port [32].")
    ] = None,
    max_bundle_age: Annotated[
        float | None,
        typer.Option(help="Refuse pushed bundles issued longer ago, seconds [604800]."),
    ] = None,
    consent_listen: Annotated[
        str,
        typer.Option(
            help="host:port of the consent page (standalone; needs -f DIR): 'auto' picks a "
            "free loopback port, 'off' serves none."
        ),
    ] = "auto",
    consent_client_id: Annotated[
        str, typer.Option(help="The consent page's OIDC client id at the issuer (standalone).")
    ] = "remit-consent",
) -> None:
    """Run the gateway. Decision records go to stdout (or --audit-file); logs to stderr.

    Every limit flag has a REMIT_* variable (README: Connection limits); the flag wins.
    """
    code = start(
        GatewayFlags(
            files=files, upstream=upstream, server=server, namespace=namespace, listen=listen,
            admin_listen=admin_listen, audit_file=audit_file, public_key=public_key,
            log_level=log_level, max_connections=max_connections,
            max_concurrent_requests=max_concurrent_requests, idle_timeout=idle_timeout,
            header_timeout=header_timeout, body_timeout=body_timeout,
            max_header_bytes=max_header_bytes, max_headers=max_headers,
            admin_max_connections=admin_max_connections, max_bundle_age=max_bundle_age,
            consent_listen=consent_listen, consent_client_id=consent_client_id,
        )
    )  # fmt: skip
    if code:
        raise typer.Exit(code)


__all__ = ["gateway", "started_line", "unreachable", "with_flags"]
