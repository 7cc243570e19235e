"""``remit gateway ...``'s command line, parsed by argparse, not Typer.

Typer (and the pydantic it imports to coerce parameters) and Rich cost a standalone gateway
~11 MiB for its whole life, for nothing it does after parsing its command line. This is the
only definition of ``remit gateway``'s flags: the console script (``remit.cli.entry``) calls
:func:`main` before Typer is imported, and the Typer command in the full app (``gateway.py``)
passes its arguments, ``--help`` included, through to it. A bad flag is one line on stderr and
exit code 2, as a bad setting is, and comes before the gateway's modules are imported.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

EXIT_USAGE = 2


@dataclass(frozen=True, slots=True)
class GatewayFlags:
    """``remit gateway``'s command line; None where a flag was not given."""

    files: list[Path] | None = None
    upstream: str | None = None
    server: str | None = None
    namespace: str | None = None
    listen: str | None = None
    admin_listen: str | None = None
    audit_file: Path | None = None
    public_key: Path | None = None
    log_level: str | None = None
    max_connections: int | None = None
    max_concurrent_requests: int | None = None
    idle_timeout: float | None = None
    header_timeout: float | None = None
    body_timeout: float | None = None
    max_header_bytes: int | None = None
    max_headers: int | None = None
    admin_max_connections: int | None = None
    max_bundle_age: float | None = None
    shutdown_grace: float | None = None
    consent_listen: str = "auto"
    consent_client_id: str = "remit-consent"

    def variables(self) -> dict[str, str]:
        """The REMIT_* variables the limit flags set (a flag wins over the variable)."""
        flags = {
            "REMIT_MAX_CONNECTIONS": self.max_connections,
            "REMIT_MAX_CONCURRENT_REQUESTS": self.max_concurrent_requests,
            "REMIT_IDLE_TIMEOUT_SECONDS": self.idle_timeout,
            "REMIT_HEADER_TIMEOUT_SECONDS": self.header_timeout,
            "REMIT_BODY_TIMEOUT_SECONDS": self.body_timeout,
            "REMIT_MAX_HEADER_BYTES": self.max_header_bytes,
            "REMIT_MAX_HEADERS": self.max_headers,
            "REMIT_ADMIN_MAX_CONNECTIONS": self.admin_max_connections,
            "REMIT_MAX_BUNDLE_AGE_SECONDS": self.max_bundle_age,
            "REMIT_SHUTDOWN_GRACE_SECONDS": self.shutdown_grace,
            "REMIT_LOG_LEVEL": self.log_level,
        }
        return {k: str(v) for k, v in flags.items() if v is not None}


SUMMARY = "Run the gateway. Decision records go to stdout (or --audit-file); logs to stderr."
DESCRIPTION = (
    f"{SUMMARY} Every limit flag has a REMIT_* variable (README: Connection limits); the flag wins."
)

# (flags, dest, type, help); every option takes one value. -f/--filename may repeat.
OPTIONS: tuple[tuple[tuple[str, ...], str, type, str], ...] = (
    (("--filename", "-f"), "files", Path, "Policy directory: standalone mode (no operator)."),
    (("--upstream",), "upstream", str, "MCP server URL, e.g. http://127.0.0.1:8080/mcp."),
    (("--server", "-s"), "server", str, "MCPServer name (standalone)."),
    (("--namespace", "-n"), "namespace", str, "MCPServer namespace."),
    (("--listen",), "listen", str, "host:port for MCP clients."),
    (("--admin-listen",), "admin_listen", str, "host:port of the admin API."),
    (("--audit-file",), "audit_file", Path, "Write decision records to this file (else stdout)."),
    (("--public-key",), "public_key", Path, "Bundle verification key (sidecar mode)."),
    (("--log-level",), "log_level", str, "Log level for stderr [REMIT_LOG_LEVEL, else WARNING]."),
    (("--max-connections",), "max_connections", int,
     "Open client connections on the MCP port [1024]."),
    (("--max-concurrent-requests",), "max_concurrent_requests", int,
     "MCP requests in progress at once; more get 503 [256]."),
    (("--idle-timeout",), "idle_timeout", float,
     "Seconds a connection may idle before a request [5]."),
    (("--header-timeout",), "header_timeout", float,
     "Seconds from a request's first byte to its headers [10]."),
    (("--body-timeout",), "body_timeout", float,
     "Seconds from the headers to the end of the body [30]."),
    (("--max-header-bytes",), "max_header_bytes", int,
     "Bytes of request line and headers [32768]."),
    (("--max-headers",), "max_headers", int, "Request headers [100]."),
    (("--admin-max-connections",), "admin_max_connections", int,
     "Open connections on the admin port [32]."),
    (("--max-bundle-age",), "max_bundle_age", float,
     "Refuse pushed bundles issued longer ago, seconds [604800]."),
    (("--shutdown-grace",), "shutdown_grace", float,
     "Seconds calls in flight may finish after SIGTERM; then they are cut off [20]."),
    (("--consent-listen",), "consent_listen", str,
     "host:port of the consent page (standalone; needs -f DIR): 'auto' picks a free loopback "
     "port, 'off' serves none."),
    (("--consent-client-id",), "consent_client_id", str,
     "The consent page's OIDC client id at the issuer (standalone)."),
)  # fmt: skip


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line naming the problem, exit code 2 (argparse prints its usage too)."""
        print(f"error: remit gateway: {message} (see remit gateway --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def parser() -> argparse.ArgumentParser:
    """The ``remit gateway`` command line."""
    parsed = _Parser(prog="remit gateway", description=DESCRIPTION, allow_abbrev=False)
    defaults = GatewayFlags()
    for names, dest, kind, text in OPTIONS:
        default = getattr(defaults, dest)
        shown = f" [default: {default}]" if default is not None else ""
        action, metavar = ("append", "DIR") if dest == "files" else ("store", dest.upper())
        parsed.add_argument(*names, dest=dest, type=kind, action=action, default=default,
                            help=text + shown, metavar=metavar)  # fmt: skip
    return parsed


def flags(argv: Sequence[str]) -> GatewayFlags:
    """``argv`` (after ``remit gateway``) as flags; exits 2 on a bad one."""
    return GatewayFlags(**vars(parser().parse_args(list(argv))))


def main(argv: Sequence[str] | None = None) -> int:
    """``remit gateway ARGS``: the process exit code."""
    parsed = flags(sys.argv[2:] if argv is None else argv)  # a bad flag exits before imports
    from remit.cli.gateway_start import start  # noqa: PLC0415

    return start(parsed)


__all__ = ["DESCRIPTION", "OPTIONS", "SUMMARY", "GatewayFlags", "flags", "main", "parser"]
