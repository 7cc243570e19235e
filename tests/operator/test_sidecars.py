"""Which pods get bundles, and when: real gateways on 127.0.0.N, pods written as a kubelet would.

- a pod whose gateway has not started is waited for (no push, no PushFailed), and pushed the
  moment the kubelet reports it started;
- a failed push is retried within seconds, not at the next resync;
- only pods the webhook sealed count: a hand-made or tampered pod is never pushed to or read,
  so its pins and serial never reach the bundle;
- the pod watch is filtered by the API server and paginated;
- a native sidecar (init container, restartPolicy Always) is injected and served.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kmock
import pytest
from aiohttp import web

from remit.demo.issuer import Issuer
from tests.operator.support import (
    API,
    NAMESPACE,
    RunningOperator,
    Sidecar,
    app_pod,
    apply,
    events,
    eventually,
    fleet,
    free_everywhere,
    gateway_status,
    injected,
    operator_settings,
    post_pod,
    running_operator,
    server_doc,
    set_pod_status,
    status_of,
    stored,
)


async def _server(
    k8s: kmock.KubernetesEmulator, op: RunningOperator, issuer: Issuer, ip: str, tmp: Path
) -> tuple[int, Path]:
    """An MCPServer "files" whose ports are free on ``ip``; the public key file a pod mounts."""
    port = free_everywhere([ip])
    admin = port
    while admin == port:
        admin = free_everywhere([ip])
    await apply(k8s, server_doc(issuer.issuer, issuer.jwks_uri, port, admin))
    configmap = await eventually(
        lambda: stored(k8s, "v1/configmaps", NAMESPACE, op.settings.signing.public_key_configmap)
    )
    key_file = tmp / "public.jwk"
    key_file.write_text(configmap["data"]["public.jwk"])
    return admin, key_file


def _reason(k8s: kmock.KubernetesEmulator) -> str | None:
    conditions = status_of(k8s, "MCPServer", "files").get("conditions") or [{}]
    reason: str | None = conditions[0].get("reason")
    return reason


async def test_pod_is_pushed_when_its_gateway_starts_and_not_reported_before(
    k8s: kmock.KubernetesEmulator,
    operator: RunningOperator,
    issuer: Issuer,
    upstream: str,
    tmp_path: Path,
) -> None:
    ip = "127.0.0.40"
    _, key_file = await _server(k8s, operator, issuer, ip, tmp_path)
    pod = await injected(operator.settings, app_pod("files-40"))
    sidecar = Sidecar(pod, ip, upstream, key_file)
    # Running with an IP, the gateway container created but its startup probe not passed yet:
    # nothing listens, so a push could only fail.
    await post_pod(k8s, pod, gateway_status(ip, started=False))
    await eventually(lambda: status_of(k8s, "MCPServer", "files").get("sidecarsDesired") == 1)
    assert _reason(k8s) == "Syncing"
    try:
        sidecar.start()
        await asyncio.to_thread(sidecar.wait)
        await set_pod_status(k8s, "files-40", gateway_status(ip, started=True))
        digest = await eventually(sidecar.digest, timeout=5)
        assert digest == status_of(k8s, "MCPServer", "files")["bundleDigest"]
        await eventually(lambda: _reason(k8s) == "InSync")
    finally:
        sidecar.stop()
    assert events(k8s, "PushFailed") == []


async def test_failed_push_is_retried_within_seconds_not_at_the_resync(
    k8s: kmock.KubernetesEmulator,
    operator: RunningOperator,
    issuer: Issuer,
    upstream: str,
    tmp_path: Path,
) -> None:
    assert operator.settings.sync.resync_seconds >= 3600  # the resync cannot be what pushes
    ip = "127.0.0.41"
    _, key_file = await _server(k8s, operator, issuer, ip, tmp_path)
    pod = await injected(operator.settings, app_pod("files-41"))
    sidecar = Sidecar(pod, ip, upstream, key_file)
    await post_pod(k8s, pod, gateway_status(ip, started=True))  # "started", yet not listening
    await eventually(lambda: _reason(k8s) == "PushFailed", timeout=15)
    try:
        sidecar.start()  # it comes up; nothing is written to the API
        await asyncio.to_thread(sidecar.wait)
        await eventually(sidecar.digest, timeout=10)
        await eventually(lambda: _reason(k8s) == "InSync", timeout=10)
    finally:
        sidecar.stop()


class Impostor:
    """An admin API that claims pins and a serial from the far future, recording every hit."""

    def __init__(self) -> None:
        self.hits: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append(f"{request.method} {request.path}")
        far = int((datetime.now(UTC) + timedelta(days=3650)).timestamp() * 1000)
        return web.json_response(
            {
                "ready": True,
                "bundle": {"digest": "sha256:forged", "serial": far},
                "pins": {"evil_tool": "sha256:" + "0" * 64},
            }
        )


@pytest.fixture
async def fast_resync(
    k8s: kmock.KubernetesEmulator, tmp_path: Path
) -> AsyncIterator[RunningOperator]:
    """The operator reading every sidecar's status each second (pins are learned there)."""
    settings = operator_settings(tmp_path, {"REMIT_RESYNC_SECONDS": "1.0"})
    async with running_operator(k8s, settings) as running:
        yield running


async def test_only_pods_the_webhook_sealed_count(
    k8s: kmock.KubernetesEmulator,
    fast_resync: RunningOperator,
    issuer: Issuer,
    upstream: str,
    tmp_path: Path,
) -> None:
    operator = fast_resync
    async with fleet(
        k8s, operator, issuer.issuer, issuer.jwks_uri, upstream, 1, tmp_path, first_ip=50
    ) as files:
        admin_port = files.sidecars[0].admin_port
        impostor = Impostor()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", impostor.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        forged: dict[str, dict[str, Any]] = {}
        # 1. Hand-made: the annotation and the label, no seal.
        forged["files-51"] = {
            **app_pod("files-51"),
            "metadata": {
                "name": "files-51",
                "namespace": NAMESPACE,
                "labels": {"app": "files-mcp", "remit.dev/mcpserver": "files"},
                "annotations": {"remit.dev/mcpserver": "files"},
            },
        }
        # 2. A genuine seal copied onto a pod whose gateway runs another image.
        tampered = copy.deepcopy(files.sidecars[0].pod)
        tampered["metadata"]["name"] = "files-52"
        next(c for c in tampered["spec"]["containers"] if c["name"] == "remit-gateway")["image"] = (
            "attacker/gateway:1"
        )
        forged["files-52"] = tampered
        # 3. Sealed, but relabelled out of the server's selector.
        moved = await injected(operator.settings, app_pod("files-53"))
        moved["metadata"]["labels"]["app"] = "something-else"
        forged["files-53"] = moved
        try:
            for n, pod in enumerate(forged.values(), start=51):
                ip = f"127.0.0.{n}"
                await web.TCPSite(runner, ip, admin_port).start()
                await post_pod(k8s, pod, gateway_status(ip, started=True))
            await eventually(lambda: len(operator.runtime.index.pods) == 4)
            await eventually(lambda: events(k8s, "UntrustedSidecar"))
            await asyncio.sleep(2.5)  # two resyncs: every counted sidecar's status was read
            status = status_of(k8s, "MCPServer", "files")
        finally:
            await runner.cleanup()
    assert impostor.hits == []  # never pushed to, never asked
    assert "evil_tool" not in status["toolPins"]
    assert status["sidecarsDesired"] == 1
    ahead = datetime.now(UTC) + timedelta(minutes=10)
    assert status["bundleSerial"] < ahead.timestamp() * 1000


async def test_pod_watch_is_filtered_by_the_api_server_and_paginated(
    k8s: kmock.KubernetesEmulator, operator: RunningOperator
) -> None:
    await eventually(lambda: any("/pods" in r.url.path for r in k8s))
    pod_reads = [r for r in k8s if r.method == kmock.method.GET and r.url.path.endswith("/pods")]
    assert pod_reads
    for request in pod_reads:  # every list and watch of pods, never all pods of the cluster
        assert request.params.get("labelSelector") == "remit.dev/mcpserver", request.url
    lists = [r for r in pod_reads if r.params.get("watch") != "true"]
    assert lists
    assert all(r.params.get("limit") for r in lists)


async def test_native_sidecar_is_injected_and_kept_in_sync(
    k8s: kmock.KubernetesEmulator, issuer: Issuer, upstream: str, tmp_path: Path
) -> None:
    settings = operator_settings(tmp_path, {"REMIT_GATEWAY_NATIVE_SIDECAR": "true"})
    async with (
        running_operator(k8s, settings) as operator,
        fleet(
            k8s, operator, issuer.issuer, issuer.jwks_uri, upstream, 1, tmp_path, first_ip=60
        ) as files,
    ):
        pod = files.sidecars[0].pod
        first = pod["spec"]["initContainers"][0]
        assert first["name"] == "remit-gateway"
        assert first["restartPolicy"] == "Always"
        assert [c["name"] for c in pod["spec"]["containers"]] == ["files"]
        assert await files.digests() == [files.server_digest()]
    assert stored(k8s, f"{API}/mcpservers", NAMESPACE, "files") is not None
