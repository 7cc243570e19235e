"""Starting the operator: kopf settings from Remit's, the webhook server, and running kopf.

``build`` gives a registry, kopf settings and the Runtime for one run (tests use it with
``kopf.testing.KopfRunner``); ``run`` runs it in-process (``remit operator``,
``python -m remit_operator``); ``install_default`` registers on kopf's default registry so that
``kopf run -A -m remit_operator`` works as well.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import kopf

from remit_operator.certs import service_names, write_self_signed
from remit_operator.handlers import register, watch_settings
from remit_operator.kube import object_path
from remit_operator.runtime import Runtime
from remit_operator.settings import Settings
from remit_operator.webhook_tls import ensure_serving_cert, install
from remit_operator.webhookconfig import WEBHOOK_PATH, webhook_configuration

log = logging.getLogger(__name__)
FINALIZER = "remit.dev/operator"


class AdmissionServer(kopf.WebhookServer):
    """kopf's HTTPS webhook server, giving each reviewed object its request's namespace.

    The API server does not always fill ``metadata.namespace`` in the object under review (pods
    made by controllers); injection needs it, so it is copied from ``request.namespace``.
    ``gate``, when set, is awaited before listening: the Runtime's start-up after kopf's login
    (signing key, operator-kept certificate written where this server reads it).
    """

    gate: Callable[[], Awaitable[Any]] | None = None

    async def __call__(self, fn: Any) -> AsyncIterator[Any]:
        if self.gate is not None:
            await self.gate()

        async def with_namespace(request: Any, **kwargs: Any) -> Any:
            payload = request.get("request") or {}
            namespace = payload.get("namespace")
            for key in ("object", "oldObject"):
                obj = payload.get(key)
                if namespace and isinstance(obj, dict):
                    metadata = obj.setdefault("metadata", {})
                    if not metadata.get("namespace"):
                        metadata["namespace"] = namespace
            return await fn(request, **kwargs)

        async for config in super().__call__(with_namespace):
            yield config


def webhook_files(settings: Settings, scratch: Path) -> tuple[str, str]:
    """The webhook's certificate and key: the configured ones, or a fresh self-signed pair."""
    if settings.webhook.tls.cert_file and settings.webhook.tls.key_file:
        return settings.webhook.tls.cert_file, settings.webhook.tls.key_file
    names = [*service_names(settings.webhook.service), "localhost", "127.0.0.1"]
    if settings.webhook.host not in ("0.0.0.0", "::"):  # noqa: S104 - comparing, not binding
        names.insert(0, settings.webhook.host)
    cert, key = write_self_signed(scratch, names)
    return str(cert), str(key)


def peering_priority() -> int:
    """A random priority for this replica: kopf pauses *every* replica that sees a peer with the
    same priority, so replicas that all kept the default (0) would never reconcile anything. The
    replica with the highest priority is active; the others wait and take over when it goes."""
    return secrets.randbelow(2**31 - 1) + 1


def configure(kopf_settings: kopf.OperatorSettings, settings: Settings, scratch: Path) -> None:
    """Apply Remit's settings to kopf's: peering, storage names, the webhook server."""
    kopf_settings.peering.standalone = settings.kube.peering is None
    if settings.kube.peering:
        kopf_settings.peering.name = settings.kube.peering
        kopf_settings.peering.mandatory = True
        kopf_settings.peering.priority = peering_priority()
        kopf_settings.peering.lifetime = settings.kube.peering_lifetime
    kopf_settings.persistence.finalizer = FINALIZER
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="remit.dev")
    kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="remit.dev")
    kopf_settings.posting.level = logging.WARNING
    watch_settings(kopf_settings)
    certfile, keyfile = webhook_files(settings, scratch)
    kopf_settings.admission.server = AdmissionServer(
        addr=settings.webhook.host,
        port=settings.webhook.port,
        certfile=certfile,
        pkeyfile=keyfile,
    )
    kopf_settings.admission.managed = (
        None  # our own configuration: see ensure_webhook_configuration
    )


async def ensure_webhook_configuration(
    runtime: Runtime, certfile: str, keyfile: str | None = None
) -> None:
    """Serve the operator-kept certificate when REMIT_WEBHOOK_TLS_SECRET is set (writing it where
    the webhook server reads it; the server waits for this, see ``AdmissionServer.gate``), and
    create or update the MutatingWebhookConfiguration when a webhook Service is configured."""
    ca = Path(certfile).read_bytes()
    if runtime.settings.webhook.tls.secret and keyfile:
        tls = await ensure_serving_cert(runtime.kube, runtime.settings)
        install(tls, certfile, keyfile)
        ca = tls.ca
    if not runtime.settings.webhook.service:
        return
    body = webhook_configuration(runtime.settings, ca)
    collection = object_path("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations")
    await runtime.kube.ensure(collection, body, ("webhooks",))


def build(
    settings: Settings, *, connection: kopf.ConnectionInfo | None = None
) -> tuple[kopf.OperatorRegistry, kopf.OperatorSettings, Runtime]:
    """A registry with every handler, kopf settings and the Runtime for one operator run."""
    scratch = Path(tempfile.mkdtemp(prefix="remit-operator-"))
    runtime = Runtime(settings, connection=connection)
    registry = kopf.OperatorRegistry()
    register(registry, runtime)
    kopf_settings = kopf.OperatorSettings()
    configure(kopf_settings, settings, scratch)

    after_login(runtime, kopf_settings)

    @kopf.on.startup(registry=registry, id="remit-loop-errors")
    async def _loop_errors(**_: Any) -> None:
        asyncio.get_running_loop().set_exception_handler(handle_loop_error)

    return registry, kopf_settings, runtime


def after_login(runtime: Runtime, kopf_settings: kopf.OperatorSettings) -> None:
    """The webhook's certificate and configuration need the API: kopf logs in only after every
    start-up handler, so they run once the Runtime has logged in and loaded its key, and the
    webhook server listens only after them."""
    server = kopf_settings.admission.server
    certfile = getattr(server, "certfile", None)
    keyfile = getattr(server, "pkeyfile", None)
    if certfile:

        async def webhook_configuration() -> None:
            await ensure_webhook_configuration(runtime, str(certfile), keyfile and str(keyfile))

        runtime.after_ready.append(webhook_configuration)
    if isinstance(server, AdmissionServer):
        server.gate = runtime.started


def log_unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    """One log line for an exception Python cannot raise (not a traceback on stderr).

    At shutdown kopf's watch streams are async generators closed by the event loop; one that
    fails to close (``generator didn't stop after athrow()``) would otherwise print a
    traceback into the operator's log. The traceback stays available at DEBUG.
    """
    log.warning(
        "ignored %s%s in %r",
        unraisable.exc_type.__name__,
        f" ({unraisable.exc_value})" if unraisable.exc_value is not None else "",
        unraisable.object,
    )
    log.debug("ignored exception", exc_info=unraisable.exc_value)


def handle_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A watch stream that fails to close at shutdown is one log line, not a traceback.

    kopf's watch streams are async generators; asyncio closes those still open when the loop
    ends and reports a failure to close (``generator didn't stop after athrow()``) through the
    loop's exception handler, which would print a traceback into the operator's log. Every
    other loop error keeps asyncio's default report.
    """
    if "asyncgen" not in context:
        loop.default_exception_handler(context)
        return
    error = context.get("exception")
    log.warning("closing %r failed: %r", context["asyncgen"], error)
    log.debug("closing an async generator failed", exc_info=error)


def run(settings: Settings) -> None:
    """Run the operator in this process until interrupted (all namespaces)."""
    logging.basicConfig(
        level=settings.kube.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    sys.unraisablehook = log_unraisable
    if settings.kube.log_level.upper() != "DEBUG":  # one line per request to every sidecar: noise
        logging.getLogger("httpx").setLevel(logging.WARNING)
    registry, kopf_settings, runtime = build(settings)
    log.info(
        "webhook on https://%s:%s%s", settings.webhook.host, settings.webhook.port, WEBHOOK_PATH
    )
    kopf.run(
        registry=registry,
        settings=kopf_settings,
        clusterwide=True,
        standalone=settings.kube.peering is None,
        peering_name=settings.kube.peering,
        # The identity the sync loops' leadership reads (leader.py); kopf's Identity type is a
        # NewType of str it does not export.
        identity=runtime.identity,  # type: ignore[arg-type]
        liveness_endpoint=f"http://0.0.0.0:{settings.kube.health_port}/healthz",
    )


def install_default() -> None:
    """Register on kopf's default registry (``kopf run -A -m remit_operator``)."""
    settings = Settings.from_env()
    runtime = Runtime(settings)
    os.environ.setdefault("POD_ID", runtime.identity)  # kopf reads its peering identity there
    registry = kopf.get_default_registry()
    register(registry, runtime)

    @kopf.on.startup(registry=registry, id="remit-settings")
    async def _configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        scratch = Path(tempfile.mkdtemp(prefix="remit-operator-"))
        configure(settings, runtime.settings, scratch)
        after_login(runtime, settings)
