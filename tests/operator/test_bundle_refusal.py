"""The operator and sidecars that refuse its bundle: a wrong server, a bundle grown too old, a
sidecar too old for a field the bundle uses.

Real sidecar processes and the real operator against the Kubernetes emulator. A sidecar whose
``REMIT_SERVER`` names another MCPServer refuses the files bundle; the MCPServer's ``Ready``
condition says ``BundleRefused`` and a ``BundleRefused`` Event names the pod and both
servers. An unchanged bundle is signed again once ``REMIT_BUNDLE_REFRESH_SECONDS`` old, so a
sidecar restarted later (which refuses bundles older than ``REMIT_MAX_BUNDLE_AGE_SECONDS``)
still gets one it accepts.

A format-1 sidecar (a small aiohttp admin API that verifies the operator's signature and
decodes with the frozen format-1 decoder, ``tests/dataplane/compat/v1/schema.py``: no
``bundleFields`` in its status, 400 malformed "unknown field") next to a real current one, for a
bundle that uses ``authentication.agentClaims``: the MCPServer says ``SidecarsTooOld`` naming
the field and the old pod only, until that pod restarts on the current sidecar.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kmock
import pytest
from aiohttp import web

from remit.demo.issuer import Issuer
from remit.errors import BundleError
from remit.policy.signing import load_key
from remit_operator.index import Sidecar as IndexedSidecar
from remit_operator.push import Pusher
from tests.dataplane.compat.support import payload_of
from tests.dataplane.compat.v1.schema import parse_bundle
from tests.operator.support import (
    NAMESPACE,
    RunningOperator,
    Sidecar,
    admission_review,
    app_pod,
    apply,
    eventually,
    fleet,
    free_everywhere,
    free_port,
    injected,
    operator_settings,
    patched,
    running_operator,
    send_review,
    server_doc,
    status_of,
    stored,
)

FIELD = "ServerSettings.agentClaims"


def events(k8s: kmock.KubernetesEmulator, reason: str) -> list[dict[str, Any]]:
    found = []
    for (resource, _, _), obj in list(k8s.objects.items()):
        if resource.plural == "events" and not obj.deleted and obj.get("reason") == reason:
            found.append(obj.raw)
    return found


async def test_a_sidecar_refusing_the_bundle_shows_in_status_and_an_event(
    k8s: kmock.KubernetesEmulator,
    operator: RunningOperator,
    issuer: Issuer,
    upstream: str,
    tmp_path: Path,
) -> None:
    ip = "127.0.0.9"
    port, admin_port = free_port(ip), free_port(ip)
    await apply(k8s, server_doc(issuer.issuer, issuer.jwks_uri, port, admin_port))
    settings = operator.settings
    configmap = await eventually(
        lambda: stored(k8s, "v1/configmaps", NAMESPACE, settings.signing.public_key_configmap)
    )
    key_file = tmp_path / "public.jwk"
    key_file.write_text(configmap["data"]["public.jwk"])
    pod = app_pod("files-9")
    answer = await send_review(settings, admission_review(pod))
    assert answer["allowed"], answer
    sidecar = Sidecar(patched(pod, answer), ip, upstream, key_file)
    assert sidecar.env["REMIT_SERVER"] == f"{NAMESPACE}/files"
    sidecar.env["REMIT_SERVER"] = f"{NAMESPACE}/tickets"  # a sidecar serving another server
    sidecar.start()
    try:
        await asyncio.to_thread(sidecar.wait)
        response = await k8s.post(f"/api/v1/namespaces/{NAMESPACE}/pods", json=sidecar.pod_object())
        assert response.status < 300

        def refused() -> bool:
            conditions = status_of(k8s, "MCPServer", "files").get("conditions") or [{}]
            return conditions[0].get("reason") == "BundleRefused"

        await eventually(refused, timeout=15)
        condition = status_of(k8s, "MCPServer", "files")["conditions"][0]
        assert condition["status"] == "False"
        assert "agents/files-9" in condition["message"]
        assert "bundle is for server agents/files" in condition["message"]
        assert "serves agents/tickets" in condition["message"]
        event = (await eventually(lambda: events(k8s, "BundleRefused")))[0]
        assert event["type"] == "Warning"
        assert "agents/files-9: push: HTTP 422" in event["message"]
        assert "agents/tickets" in event["message"]
        held = await sidecar.status()
        assert held["bundle"] is None
        assert held["bundleRefusals"]["counts"]["wrong_server"] >= 1
    finally:
        sidecar.stop()


async def test_an_unchanged_bundle_is_signed_again_before_sidecars_find_it_too_old(
    k8s: kmock.KubernetesEmulator, issuer: Issuer, upstream: str, tmp_path: Path
) -> None:
    settings = operator_settings(
        tmp_path, {"REMIT_BUNDLE_REFRESH_SECONDS": "1.0", "REMIT_RESYNC_SECONDS": "1.0"}
    )
    async with (
        running_operator(k8s, settings) as operator,
        fleet(k8s, operator, issuer.issuer, issuer.jwks_uri, upstream, 1, tmp_path) as files,
    ):
        sidecar = files.sidecars[0]
        first = (await sidecar.status())["bundle"]
        sidecar.env["REMIT_MAX_BUNDLE_AGE_SECONDS"] = "3"

        def resigned() -> bool:
            return (status_of(k8s, "MCPServer", "files").get("bundleSerial") or 0) > first["serial"]

        await eventually(resigned, timeout=15)
        issued = datetime.fromisoformat(first["issuedAt"])
        # Wait until the first signed bundle is older than the restarted sidecar will accept.
        await eventually(lambda: (datetime.now(UTC) - issued).total_seconds() > 3.5, timeout=10)
        sidecar.restart()  # a fresh process: no bundle, no serial, a 3 s maximum age
        await files.update_pod(sidecar)

        async def installed() -> dict[str, Any] | None:
            bundle: dict[str, Any] | None = (await sidecar.status())["bundle"]
            return bundle

        bundle = await eventually(installed, timeout=15)
        assert bundle["digest"] == first["digest"]
        assert bundle["serial"] > first["serial"]
        assert (await sidecar.status())["bundleRefusals"]["counts"] == {}


@asynccontextmanager
async def format_1_sidecar(ip: str, admin_port: int, public_jwk: str) -> AsyncIterator[None]:
    """The admin API of a format-1 sidecar: verify, decode with the frozen decoder, refuse."""
    key = load_key(public_jwk)

    async def put(request: web.Request) -> web.Response:
        try:
            parse_bundle(payload_of((await request.read()).decode(), key))
        except BundleError as exc:
            return web.json_response({"error": str(exc), "reason": "malformed"}, status=400)
        return web.json_response({"error": "not expected here"}, status=500)

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"ready": False, "bundle": None, "pins": {}})

    app = web.Application()
    app.router.add_put("/v1/bundle", put)
    app.router.add_get("/v1/status", status)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, ip, admin_port).start()
    try:
        yield
    finally:
        await runner.cleanup()


def ready(k8s: kmock.KubernetesEmulator) -> dict[str, Any]:
    conditions = status_of(k8s, "MCPServer", "files").get("conditions") or [{}]
    found: dict[str, Any] = conditions[0]
    return found


def too_old_gauge(operator: RunningOperator) -> float | None:
    registry = operator.runtime.metrics.registry
    labels = {"server": f"{NAMESPACE}/files", "state": "too_old"}
    return registry.get_sample_value("remit_operator_sidecars", labels)


async def test_old_sidecars_are_named_by_field_and_pod_until_they_restart_newer(
    k8s: kmock.KubernetesEmulator,
    operator: RunningOperator,
    issuer: Issuer,
    upstream: str,
    tmp_path: Path,
) -> None:
    new_ip, old_ip = "127.0.0.21", "127.0.0.22"
    port = free_everywhere([new_ip, old_ip])
    admin_port = free_everywhere([new_ip, old_ip])
    doc = server_doc(issuer.issuer, issuer.jwks_uri, port, admin_port)
    doc["spec"]["authentication"]["agentClaims"] = ["client_id"]  # a later bundle field
    await apply(k8s, doc)
    name = operator.settings.signing.public_key_configmap
    configmap = await eventually(lambda: stored(k8s, "v1/configmaps", NAMESPACE, name))
    key_file = tmp_path / "public.jwk"
    key_file.write_text(configmap["data"]["public.jwk"])
    settings = operator.settings
    new = Sidecar(await injected(settings, app_pod("files-21")), new_ip, upstream, key_file)
    old = Sidecar(await injected(settings, app_pod("files-22")), old_ip, upstream, key_file)
    new.start()
    try:
        await asyncio.to_thread(new.wait)
        async with format_1_sidecar(old_ip, old.admin_port, key_file.read_text()):
            for sidecar in (new, old):
                response = await k8s.post(
                    f"/api/v1/namespaces/{NAMESPACE}/pods", json=sidecar.pod_object()
                )
                assert response.status < 300

            condition = await eventually(
                lambda: ready(k8s).get("reason") == "SidecarsTooOld" and ready(k8s), timeout=15
            )
            assert condition["status"] == "False"
            message = condition["message"]
            assert f"bundle field(s) {FIELD} unknown to sidecar(s) of {NAMESPACE}/files-22" in (
                message
            )
            assert f"sidecar(s) of {NAMESPACE}/files-21" not in message  # the new one knows it
            # Still pushed: the format-1 sidecar refused it by name and keeps what it had.
            assert "HTTP 400: malformed bundle: Object contains unknown field `agentClaims`" in (
                message
            )
            warned = await eventually(lambda: events(k8s, "SidecarsTooOld"))
            assert [e["type"] for e in warned] == ["Warning"]
            assert warned[0]["message"].startswith(f"{NAMESPACE}/files-22: ")
            assert FIELD in warned[0]["message"]
            assert too_old_gauge(operator) == 1.0
            digest = status_of(k8s, "MCPServer", "files")["bundleDigest"]
            assert (await new.status())["bundle"]["digest"] == digest
            assert FIELD in (await new.status())["bundleFields"]

        # The old pod's sidecar restarts on the current image: it reports the field, and takes
        # the bundle; the condition clears.
        old.restarts = 1
        old.start()
        await asyncio.to_thread(old.wait)
        await k8s.patch(
            f"/api/v1/namespaces/{NAMESPACE}/pods/files-22/status",
            json={"status": old.pod_status()},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        condition = await eventually(
            lambda: ready(k8s).get("reason") == "InSync" and ready(k8s), timeout=15
        )
        assert condition["status"] == "True"
        assert condition["message"] == f"2/2 sidecars run bundle {digest}"
        assert (await old.status())["bundle"]["digest"] == digest
        assert too_old_gauge(operator) == 0.0
        assert len(events(k8s, "SidecarsTooOld")) == 1  # warned once per pod process
    finally:
        new.stop()
        old.stop()


@pytest.fixture
async def admin() -> AsyncIterator[tuple[list[bytes], int]]:
    bodies: list[bytes] = []

    async def put(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        error = "bundle is for server agents/other, but this gateway serves agents/files"
        return web.json_response({"error": error, "reason": "wrong_server"}, status=422)

    app = web.Application()
    app.router.add_put("/v1/bundle", put)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield bodies, port
    await runner.cleanup()


async def test_a_refusal_is_kept_with_its_reason_and_not_retried_with_other_keys(
    admin: tuple[list[bytes], int], tmp_path: Path
) -> None:
    bodies, port = admin
    sidecar = IndexedSidecar("agents/p", "agents/files", "127.0.0.1", True, False, None, "1")
    pusher = Pusher(operator_settings(tmp_path))
    outcome = await pusher.push(sidecar, port, ["new-key", "old-key"])
    await pusher.close()
    assert not outcome.ok
    assert outcome.refused == "wrong_server"
    assert "HTTP 422" in (outcome.error or "")
    assert bodies == [b"new-key"]
