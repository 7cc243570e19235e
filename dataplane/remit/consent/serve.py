"""Assemble and run the consent service: its key, session key, login client, store and records.

``build_app`` makes the ASGI app from ``ConsentSettings`` (the standalone gateway calls it with
its own key, its policy directory and its audit chain); ``serve`` runs it alone under uvicorn
(``remit consent``, the chart's Deployment), writing its records to stdout as a hash chain.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Callable
from typing import Any

from remit.audit import AuditSettings, open_chain
from remit.audit.records import ConsentRecord
from remit.consent.app import ConsentService, LastUse, Recorder, create_app, recorded_last_use
from remit.consent.keys import LinkKeys
from remit.consent.login import OidcLogin
from remit.consent.settings import ConsentSettings
from remit.consent.store import DirectoryStore, GrantStore
from remit.errors import SettingsError
from remit.policy.consentrequest import ConsentSealer


def _read(path: Any, variable: str) -> bytes:
    try:
        data: bytes = path.read_bytes()
    except OSError as exc:
        raise SettingsError(f"{variable}: cannot read {path}: {exc.strerror}") from exc
    return data.strip()


def make_store(settings: ConsentSettings) -> GrantStore:
    """The store ``settings`` name."""
    if settings.store == "directory":
        if settings.directory is None:
            raise SettingsError("REMIT_CONSENT_STORE=directory needs REMIT_CONSENT_DIRECTORY")
        return DirectoryStore(settings.directory)
    from remit.consent.kube import KubeStore  # noqa: PLC0415 - the cluster store only

    return KubeStore()


def build_app(
    settings: ConsentSettings,
    record: Recorder,
    *,
    store: GrantStore | None = None,
    clock: Callable[[], float] = time.time,
    last_use: LastUse = recorded_last_use,
) -> Any:
    """The consent service's ASGI app."""
    if not settings.public_url or not settings.issuer:
        raise SettingsError("the consent service needs REMIT_CONSENT_PUBLIC_URL and _ISSUER")
    sealer: ConsentSealer | LinkKeys
    if settings.key is not None:
        sealer = ConsentSealer(settings.key)
    elif settings.key_file is not None:
        sealer = LinkKeys(settings.key_file, settings.previous_key_file)
    else:
        raise SettingsError("the consent service needs REMIT_CONSENT_KEY_FILE")
    session_key = (
        _read(settings.session_key_file, "REMIT_CONSENT_SESSION_KEY_FILE")
        if settings.session_key_file is not None
        else secrets.token_bytes(32)
    )
    secret = None
    if settings.client_secret_file is not None:
        secret = _read(settings.client_secret_file, "REMIT_CONSENT_CLIENT_SECRET_FILE").decode()
    service = ConsentService(
        settings=settings,
        sealer=sealer,
        store=store if store is not None else make_store(settings),
        login=OidcLogin(settings, secret),
        record=record,
        clock=clock,
        last_use=last_use,
    )
    return create_app(service, session_key)


async def serve(settings: ConsentSettings) -> None:
    """Run the consent service alone until SIGINT/SIGTERM; records go to stdout."""
    import uvicorn  # noqa: PLC0415

    chain = await open_chain(AuditSettings(), server="consent", pod=socket.gethostname())

    async def record(entry: ConsentRecord) -> None:
        await chain.append(entry)

    app = build_app(settings, record)
    host, _, port = settings.listen.rpartition(":")
    config = uvicorn.Config(
        app, host=host, port=int(port), log_level="warning", lifespan="off", proxy_headers=False
    )
    server = uvicorn.Server(config)  # stops on SIGINT/SIGTERM
    try:
        await server.serve()
    finally:
        await chain.close()


__all__ = ["build_app", "make_store", "serve"]
