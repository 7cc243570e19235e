"""Starting ``remit gateway`` from its parsed flags, without the CLI framework.

``gateway_args.main`` calls :func:`start` with the parsed flags (for the console script, and
for the Typer command in the full app, which passes its arguments through); ``remit dev`` uses
the helpers. Nothing here imports Typer, Rich or pydantic (Typer imports pydantic to coerce its
parameters: ~9 MiB that a standalone gateway kept for its whole life), so the gateway process
holds what serving needs. A bad setting is one line on stderr and exit code 2; a start that
fails (a port in use, an upstream that cannot be reached, an audit file that cannot be opened)
is one line and exit code 1.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from remit.cli.gateway_args import EXIT_USAGE, GatewayFlags
from remit.errors import RemitError, SettingsError
from remit.gateway.app import Gateway
from remit.gateway.settings import GatewaySettings, from_environment
from remit.gateway.values import Address

EXIT_FAILED = 1


def start(flags: GatewayFlags) -> int:
    """Build the gateway ``flags`` ask for and serve it until SIGINT/SIGTERM; the exit code."""
    import uvloop  # noqa: PLC0415

    from remit.gateway.runner import release  # noqa: PLC0415
    from remit.gateway.serve import run  # noqa: PLC0415

    try:
        built, extra = _build(flags)
    except RemitError as exc:  # a bad flag or setting, a policy that does not compile
        _say(f"error: {exc}")
        return EXIT_USAGE
    if built.reloader is not None:  # standalone: the upstream must answer now
        problem = unreachable(built.settings.upstream.url)
        if problem:
            release([settings for _, settings in extra])
            _say(f"error: {problem}")
            return EXIT_FAILED
    try:
        uvloop.run(run(built, started=lambda: _say(started_line(built)), extra=extra))
    except RemitError as exc:  # a port in use, an audit file that cannot be opened
        _say(f"error: {exc}")
        return EXIT_FAILED
    return 0


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _build(flags: GatewayFlags) -> tuple[Gateway, list[Any]]:
    """The gateway and the extra apps (the consent page) it serves."""
    from remit.gateway.logs import log_to_stderr  # noqa: PLC0415
    from remit.gateway.serve import build_standalone  # noqa: PLC0415

    extra: list[Any] = []
    settings = with_flags(
        from_environment({**os.environ, **flags.variables()}),
        upstream=flags.upstream,
        listen=flags.listen,
        admin_listen=flags.admin_listen,
        public_key=flags.public_key,
        audit_file=flags.audit_file,
        files=flags.files,
    )
    log_to_stderr(settings.logs.level, "%(asctime)s %(levelname)s %(message)s")
    if not settings.bundle.policy_dirs:
        return _sidecar(settings, flags), extra
    if not flags.server:
        raise SettingsError("standalone mode (-f) needs --server NAME")
    # The page's stack (FastAPI, pydantic, PyYAML: ~25 MiB) loads on its first request.
    from remit.cli.standalone_consent import (  # noqa: PLC0415
        standalone_listen,
        standalone_page,
        standalone_settings,
    )

    page = standalone_listen(settings, flags.consent_listen)
    if page is None:
        return build_standalone(settings, flags.server, flags.namespace), extra
    try:
        settings = standalone_settings(settings, page.address)
        built = build_standalone(settings, flags.server, flags.namespace)
        extra.append(standalone_page(built, page, flags.consent_client_id))
    except BaseException:
        page.close()  # the page's port (auto) is not held past a start that failed
        raise
    return built, extra


def _sidecar(settings: GatewaySettings, flags: GatewayFlags) -> Gateway:
    if settings.bundle.public_key is None:
        raise SettingsError(
            "sidecar mode needs REMIT_BUNDLE_PUBLIC_KEY or --public-key (or use -f DIR)"
        )
    if flags.server and flags.namespace:
        instance = dataclasses.replace(
            settings.instance, server=f"{flags.namespace}/{flags.server}"
        )
        settings = dataclasses.replace(settings, instance=instance)
    if not settings.instance.server:
        raise SettingsError(
            "sidecar mode needs its MCPServer to check bundles against: REMIT_SERVER "
            "(namespace/name) or --server with --namespace"
        )
    return Gateway(settings)


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


__all__ = ["GatewayFlags", "start", "started_line", "unreachable", "with_flags"]
