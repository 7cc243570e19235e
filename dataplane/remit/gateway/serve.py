"""Run a gateway: both apps on their ports in one event loop, until a signal stops them.

Standalone mode compiles the policy directory in a child process (``standalone.py``), signs
the bundle with a key made for this run and installs it through the same verification path a
pushed bundle takes, then reloads the directory whenever it changes (``reload.py``); sidecar
mode starts empty (not ready, denying everything) and waits for the operator's push.

A signal starts a bounded drain (``drain.py``): the MCP listener stops accepting and its calls
get ``REMIT_SHUTDOWN_GRACE_SECONDS`` to finish before they are cut off, each with its outcome;
the admin listener serves (``/readyz`` 503) until they are done; then the audit chain closes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from remit.errors import CompileError, InvalidResourcesError, RemitError, StartupError
from remit.gateway.app import Gateway
from remit.gateway.drain import drain_on_stop
from remit.gateway.reload import PolicyReloader
from remit.gateway.runner import (
    App,
    ListenerSettings,
    bind_all,
    fit_descriptors,
    release,
    serve_app,
)
from remit.gateway.settings import GatewaySettings
from remit.gateway.standalone import compile_in_child
from remit.gateway.state import PolicyState
from remit.gateway.upstream import UpstreamSettings
from remit.policy.bundle import Bundle
from remit.policy.signing import generate_key, public_key, sign

# Seconds after the grace before uvicorn itself cancels what a cut-off did not end (a request
# not at the upstream: awaiting its decision's sync, say). Grace 20 + 5 fits in Kubernetes' 30.
BACKSTOP = 5.0
# Seconds the admin listener's requests get once the MCP listeners are done (it stops last).
ADMIN_BACKSTOP = 3.0

log = logging.getLogger(__name__)


def compile_standalone(
    dirs: tuple[Path, ...], server: str, namespace: str | None, serial: int | None = None
) -> tuple[Bundle, str, PolicyState]:
    """Compile ``dirs`` for ``server``, sign with a fresh key; return bundle, JWS and a state
    that trusts that key."""
    # Only standalone mode reads YAML and compiles: a sidecar never loads the resource models.
    from remit.api.loader import load  # noqa: PLC0415
    from remit.policy.compiler import compile_bundle  # noqa: PLC0415

    loaded = load(dirs)
    if loaded.errors:
        raise InvalidResourcesError(loaded.errors)
    bundle = compile_bundle(
        loaded.resources,
        server,
        namespace=namespace,
        serial=serial if serial is not None else int(time.time() * 1000),
    )
    key = generate_key()
    ref = f"{bundle.server.namespace}/{bundle.server.name}"
    return bundle, sign(bundle, key), PolicyState(public_key(key), server=ref)


def build_standalone(settings: GatewaySettings, server: str, namespace: str | None) -> Gateway:
    """A gateway enforcing the policy directory in ``settings`` for ``server``, reloading it
    whenever it changes (``gateway.reloader``, started by :func:`run`)."""
    dirs = settings.bundle.policy_dirs
    if not dirs:
        raise CompileError("standalone mode needs a policy directory (-f DIR)")
    key = generate_key()
    # Compiled in a child process (standalone.py): the gateway never holds the parse.
    token, server_ref = compile_in_child(dirs, server, namespace, int(time.time() * 1000), key)
    state = PolicyState(public_key(key), server=server_ref)
    instance = dataclasses.replace(settings.instance, server=settings.instance.server or server_ref)
    gateway = Gateway(dataclasses.replace(settings, instance=instance), state)
    bundle, _ = state.install_signed(token)
    gateway.metrics.bundle_serial.set(bundle.serial)
    gateway.reloader = PolicyReloader(dirs, server, namespace, key, state, gateway.metrics)
    return gateway


def listeners(gateway: Gateway) -> list[ListenerSettings]:
    """The MCP and admin listeners, with their limits fitted to the file-descriptor limit."""
    settings, metrics = gateway.settings, gateway.metrics
    admin = settings.connections.admin
    limits = fit_descriptors(
        settings.connections.mcp,
        admin.max_connections + UpstreamSettings().max_connections,
        adjustable=settings.connections.fit,
        setting="REMIT_MAX_CONNECTIONS (--max-connections)",
    )

    def counter(listener: str) -> Callable[[str], None]:
        refusals = metrics.connection_refusals
        return lambda reason: refusals.labels(listener, reason).inc()

    return [
        ListenerSettings(
            settings.listen.mcp.host,
            settings.listen.mcp.port,
            settings.listen.asgi_server,
            limits=limits,
            on_refusal=counter("mcp"),
            record=gateway.connection_refusal,
            name="REMIT_LISTEN (--listen)",
            lifespan=False,  # run() starts and stops the gateway itself
            stop_timeout=settings.listen.shutdown_grace + BACKSTOP,
        ),
        ListenerSettings(
            settings.listen.admin.host,
            settings.listen.admin.port,
            settings.listen.asgi_server,
            limits=admin,
            jsonrpc_errors=False,
            on_refusal=counter("admin"),
            name="REMIT_ADMIN_LISTEN (--admin-listen)",
            stop_timeout=ADMIN_BACKSTOP,
        ),
    ]


async def run(
    gateway: Gateway,
    stop: asyncio.Event | None = None,
    started: Callable[[], None] | None = None,
    extra: Sequence[tuple[App, ListenerSettings]] = (),
) -> None:
    """Serve ``gateway`` (and ``extra`` apps, e.g. the standalone consent page) until ``stop``
    is set or SIGINT/SIGTERM arrives; a standalone gateway reloads its directory meanwhile.

    Ports are listened on (connections wait in the backlog) and the gateway started (audit
    chain, upstream client) before anything is served: a taken port or an unusable audit file
    is one ``StartupError`` naming it. Then
    ``started`` is called (``remit gateway`` prints its one line there).
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _on_signal, gateway, stop)
    # Every listener is bounded: the extra ones (the consent page) stop with the MCP listener.
    bound = gateway.settings.listen.shutdown_grace + BACKSTOP
    try:
        servers = listeners(gateway) + [
            settings if settings.stop_timeout is not None
            else dataclasses.replace(settings, stop_timeout=bound)
            for _, settings in extra
        ]  # fmt: skip
    except StartupError:
        release([settings for _, settings in extra])  # their sockets (--consent-listen auto)
        raise
    sockets = bind_all(servers)
    try:
        await gateway.start()
    except (RemitError, OSError) as exc:
        for sock in sockets:
            sock.close()
        await gateway.stop()
        raise StartupError(f"cannot start the gateway: {exc}") from exc
    apps: list[App] = [gateway.mcp_app, gateway.admin_app, *(app for app, _ in extra)]
    reloading = None
    if gateway.reloader is not None:
        reloading = asyncio.create_task(gateway.reloader.run(stop))
    if started is not None:
        started()
    calls, admin = asyncio.Event(), asyncio.Event()  # the admin listener stops last
    stops = [calls, admin, *(calls for _ in extra)]
    serving = [
        asyncio.create_task(serve_app(app, settings, until, sock))
        for app, settings, until, sock in zip(apps, servers, stops, sockets, strict=True)
    ]
    grace = gateway.settings.listen.shutdown_grace
    draining = asyncio.create_task(
        drain_on_stop(gateway.drain, stop, grace, calls, [serving[0], *serving[2:]], admin)
    )
    try:
        await asyncio.gather(*serving)
    finally:
        for task in [draining, *serving]:
            task.cancel()
        if reloading is not None:
            reloading.cancel()
        await gateway.stop()


def _on_signal(gateway: Gateway, stop: asyncio.Event) -> None:
    """The first signal starts the drain; a second one cuts every call off at once."""
    if not stop.is_set():
        stop.set()
        return
    log.warning("stopping: a second signal; cutting off %d requests now", gateway.drain.in_flight)
    gateway.drain.cut()
