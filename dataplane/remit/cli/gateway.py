"""``remit gateway``: run the gateway standalone (-f DIR) or as a sidecar (REMIT_* env)."""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
import uvloop

from remit.cli.common import errors, fail
from remit.errors import RemitError
from remit.gateway.app import Gateway
from remit.gateway.logs import log_to_stderr
from remit.gateway.serve import build_standalone, run
from remit.gateway.settings import GatewaySettings, from_environment
from remit.gateway.values import Address


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
    flags = {
        "REMIT_MAX_CONNECTIONS": max_connections,
        "REMIT_MAX_CONCURRENT_REQUESTS": max_concurrent_requests,
        "REMIT_IDLE_TIMEOUT_SECONDS": idle_timeout,
        "REMIT_HEADER_TIMEOUT_SECONDS": header_timeout,
        "REMIT_BODY_TIMEOUT_SECONDS": body_timeout,
        "REMIT_MAX_HEADER_BYTES": max_header_bytes,
        "REMIT_MAX_HEADERS": max_headers,
        "REMIT_ADMIN_MAX_CONNECTIONS": admin_max_connections,
        "REMIT_MAX_BUNDLE_AGE_SECONDS": max_bundle_age,
        "REMIT_LOG_LEVEL": log_level,
    }
    try:
        settings = with_flags(
            from_environment(
                {**os.environ, **{k: str(v) for k, v in flags.items() if v is not None}}
            ),
            upstream=upstream,
            listen=listen,
            admin_listen=admin_listen,
            public_key=public_key,
            audit_file=audit_file,
            files=files,
        )
        log_to_stderr(settings.logs.level, "%(asctime)s %(levelname)s %(message)s")
        extra: list[Any] = []
        if settings.bundle.policy_dirs:
            if not server:
                fail("standalone mode (-f) needs --server NAME")
            page = None
            if consent_listen != "off":
                # The page's stack (FastAPI, pydantic, PyYAML: ~27 MiB) loads only when served.
                from remit.cli.consent import standalone_listen, standalone_settings  # noqa: PLC0415

                page = standalone_listen(settings, consent_listen)
                if page is not None:
                    settings = standalone_settings(settings, page)
            built = build_standalone(settings, server, namespace)
            problem = unreachable(settings.upstream.url)
            if problem:
                fail(problem, code=1)
            if page is not None:
                from remit.cli.consent import standalone_page  # noqa: PLC0415

                extra.append(standalone_page(built, page, consent_client_id))
        else:
            if settings.bundle.public_key is None:
                fail("sidecar mode needs REMIT_BUNDLE_PUBLIC_KEY or --public-key (or use -f DIR)")
            if server and namespace:
                instance = dataclasses.replace(settings.instance, server=f"{namespace}/{server}")
                settings = dataclasses.replace(settings, instance=instance)
            if not settings.instance.server:
                fail(
                    "sidecar mode needs its MCPServer to check bundles against: REMIT_SERVER "
                    "(namespace/name) or --server with --namespace"
                )
            built = Gateway(settings)
    except RemitError as exc:
        fail(str(exc))
    try:
        uvloop.run(
            run(
                built,
                started=lambda: errors.print(
                    started_line(built), soft_wrap=True, highlight=False, markup=False
                ),
                extra=extra,
            )
        )
    except RemitError as exc:  # a port in use, an audit file that cannot be opened
        fail(str(exc), code=1)


def unreachable(url: str, timeout: float = 3.0) -> str | None:
    """Why the upstream at ``url`` cannot be reached now (a TCP connect), or None.

    Standalone mode checks at start: a typo in --upstream is one line and exit 1, not a
    gateway that answers every call with upstream_unavailable. (A sidecar does not: its MCP
    server container may start after it.)
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"--upstream: expected an http(s) URL, got {url!r}"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        return f"cannot reach the upstream {url} ({parts.hostname}:{port}): {reason}"
    return None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def started_line(gateway: Gateway) -> str:
    """The one line a healthy start prints: what it serves, for which server, which bundle."""
    s = gateway.settings
    policy = gateway.state.current
    bundle = (
        f"bundle sha256:{policy.bundle.digest[:12]} (serial {policy.bundle.serial})"
        if policy is not None
        else "no bundle yet: denying every call until the operator pushes one"
    )
    mcp, admin = s.listen.mcp, s.listen.admin
    records = str(s.audit.path) if s.audit.sink == "file" else s.audit.sink
    return (
        f"remit gateway: serving {s.instance.server or '?'} at "
        f"http://{_url_host(mcp.host)}:{mcp.port}{s.upstream.mcp_path} -> {s.upstream.url}; "
        f"admin http://{_url_host(admin.host)}:{admin.port}; {bundle}; "
        f"decision records to {records}"
    )


def with_flags(
    settings: GatewaySettings,
    *,
    upstream: str | None,
    listen: str | None,
    admin_listen: str | None,
    public_key: Path | None,
    audit_file: Path | None,
    files: list[Path] | None,
) -> GatewaySettings:
    """``settings`` with the command line's flags in place of the variables they override."""
    target, addresses, bundle, audit = (
        settings.upstream,
        settings.listen,
        settings.bundle,
        settings.audit,
    )
    if upstream:
        target = dataclasses.replace(target, url=upstream)
    if listen:
        addresses = dataclasses.replace(addresses, mcp=Address.parse(listen, "--listen"))
    if admin_listen:
        admin = Address.parse(admin_listen, "--admin-listen")
        addresses = dataclasses.replace(addresses, admin=admin)
    if public_key:
        bundle = dataclasses.replace(bundle, public_key=public_key)
    if files:
        bundle = dataclasses.replace(bundle, policy_dirs=tuple(files))
    if audit_file:
        audit = dataclasses.replace(audit, sink="file", path=audit_file)
    return dataclasses.replace(
        settings, upstream=target, listen=addresses, bundle=bundle, audit=audit
    )


def main() -> None:
    """``remit gateway ...`` alone (``remit.cli.entry``): the other commands are not loaded."""
    app = typer.Typer(name="remit", pretty_exceptions_enable=False, add_completion=False)
    app.callback()(lambda: None)  # keep ``gateway`` a subcommand, as in the full app
    app.command("gateway")(gateway)
    app(prog_name="remit")
