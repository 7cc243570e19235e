"""``remit consent``: run the consent service (in a cluster, the chart's Deployment); and the
consent page a standalone ``remit gateway -f DIR`` serves beside the gateway.

The standalone gateway and its consent page share one process: the key that seals consent
requests is made for the run, the page logs humans in at the MCPServer's issuer, writes grants
into the policy directory (which the gateway reloads) and records answers on the gateway's own
audit chain, so ``remit audit explain`` finds them next to the decisions.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any
from urllib.parse import urlsplit

import uvloop

from remit.api.consentgrant import ConsentGrant
from remit.audit.records import ConsentRecord
from remit.cli.common import fail
from remit.consent.serve import build_app, serve
from remit.consent.settings import ConsentSettings
from remit.consent.store import DirectoryStore
from remit.errors import AuditError, RemitError
from remit.gateway.app import Gateway
from remit.gateway.connections import ConnectionLimits
from remit.gateway.runner import ListenerSettings, free_port
from remit.gateway.settings import GatewaySettings
from remit.policy.consentrequest import load_consent_key, new_key
from remit.settings import load


def consent() -> None:
    """Run the consent service (settings: REMIT_CONSENT_* variables, docs/consent.md)."""
    try:
        settings = load(ConsentSettings, os.environ)
        uvloop.run(serve(settings))
    except RemitError as exc:
        fail(str(exc))


def standalone_listen(settings: GatewaySettings, listen: str) -> str | None:
    """Where the standalone consent page listens (``auto``: a free loopback port), or None
    when there is none (``off``, or the policy is a file: grants need a directory)."""
    dirs = settings.bundle.policy_dirs
    if listen == "off" or not dirs or not dirs[0].is_dir():
        return None
    return f"127.0.0.1:{free_port()}" if listen == "auto" else listen


def standalone_settings(settings: GatewaySettings, listen: str) -> GatewaySettings:
    """Gateway settings linking denied calls to the consent page on ``listen``."""
    links = settings.consent
    key = links.key
    if key is None:
        key = load_consent_key(links.key_file) if links.key_file is not None else new_key()
    links = dataclasses.replace(links, url=links.url or f"http://{listen}", key=key)
    return dataclasses.replace(settings, consent=links)


def standalone_page(gateway: Gateway, listen: str, client_id: str) -> tuple[Any, ListenerSettings]:
    """The consent page for a standalone gateway, and where it listens."""
    settings = gateway.settings
    policy = gateway.state.current
    if policy is None or not settings.bundle.policy_dirs or settings.consent.key is None:
        fail("the standalone consent page needs a compiled policy directory")
    directory = settings.bundle.policy_dirs[0]
    public = settings.consent.url
    from_env = load(ConsentSettings, os.environ)  # REMIT_CONSENT_ADMINS applies here too
    consent_settings = ConsentSettings(
        admins=from_env.admins,
        public_url=public,
        listen=listen,
        issuer=policy.bundle.server.issuer,
        client_id=client_id,
        store="directory",
        directory=directory,
        insecure_cookies=public.startswith("http://") and not _loopback(public),
        key=settings.consent.key,
    )

    async def record(entry: ConsentRecord) -> None:
        if gateway.chain is None:
            raise AuditError("the gateway's audit chain is not open")
        await gateway.chain.append(entry)

    def last_use(grant: ConsentGrant) -> str | None:
        # Standalone, the gateway is in this process: ask it (records name grants ns/name).
        guard = gateway.guard
        return guard.recorder.grant_use.get(grant.ref) if guard is not None else None

    app = build_app(consent_settings, record, store=DirectoryStore(directory), last_use=last_use)
    host, _, port = listen.rpartition(":")
    return app, ListenerSettings(
        host, int(port), limits=ConnectionLimits(), jsonrpc_errors=False,
        name="--consent-listen", lifespan=False,
    )  # fmt: skip


def _loopback(url: str) -> bool:
    """Browsers keep ``Secure`` cookies of http://127.0.0.1 and http://localhost."""
    host = urlsplit(url).hostname or ""
    return host == "localhost" or host.startswith("127.")


__all__ = ["consent", "standalone_listen", "standalone_page", "standalone_settings"]
