"""Upgrading the operator under running pods: pods the previous release injected (v1 seal)
stay governed when every volume their gateway mounts is exactly as that release injected it,
and their sidecars get bundles without an endless attempt to deliver a digest key they read
from their own mount.

``v1_pod.json`` was injected and sealed by the previous release's own webhook code
(``make_v1_pod.py``, run at commit cd3fc64), not rebuilt here; ``as_v1`` turns a pod of this
release's webhook into exactly that (checked against the file), sealed with the running
operator's key. The push tests run the real ``Pusher`` (and the whole operator against the
Kubernetes emulator) against a small aiohttp admin API answering as that release's sidecar
does: its ``/v1/status`` shape, bundles checked and decoded by the frozen format-1 decoder,
405 for any PUT but the bundle's.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kmock
import pytest
from aiohttp import web
from joserfc.jwk import OKPKey

from remit.api.mcpserver import MCPServer
from remit.policy.signing import load_key
from remit_operator.auditkeys import MOUNTED, deliver_keys
from remit_operator.errors import InjectionError, SettingsError
from remit_operator.index import Sidecar, gateway_spec, sidecar_from_pod
from remit_operator.keys import Keyring
from remit_operator.push import Pusher
from remit_operator.seal import container_digest, seal, verify
from remit_operator.seal_v1 import V1_CONTEXT, container_digest_v1
from remit_operator.settings import Settings, SigningSettings
from remit_operator.trust import V1Seals, sort_sidecars
from remit_operator.webhook import inject
from tests.dataplane.compat.support import payload_of
from tests.dataplane.compat.v1.schema import parse_bundle
from tests.operator.make_v1_pod import fixture_key, server_document
from tests.operator.support import (
    API,
    NAMESPACE,
    RunningOperator,
    app_pod,
    apply,
    events,
    eventually,
    free_everywhere,
    free_port,
    injected,
    operator_settings,
    server_doc,
    status_of,
    stored,
)
from tests.operator.support import Sidecar as SidecarProcess

pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
KEY = fixture_key()
CONFIGMAP = Settings().signing.public_key_configmap
SERVER = MCPServer.model_validate(server_document())
UPGRADED = datetime(2026, 12, 1, tzinfo=UTC)  # REMIT_V1_SEALS_BEFORE in these tests


def _stored_v1_pod() -> dict[str, Any]:
    """The v1 pod as the API server stores it (``defaultMode`` filled in), running."""
    pod: dict[str, Any] = json.loads((Path(__file__).parent / "v1_pod.json").read_text())
    for volume in pod["spec"]["volumes"]:
        for kind in ("configMap", "secret"):
            if kind in volume:
                volume[kind]["defaultMode"] = 420
    pod["metadata"]["uid"] = "pod-uid-1"
    pod["metadata"]["creationTimestamp"] = "2026-11-30T10:00:00Z"  # before the upgrade
    pod["status"] = {"phase": "Running", "podIP": "127.0.0.1"}
    return pod


def _sort(pod: dict[str, Any], *, accept_v1: bool = True) -> tuple[bool, str, frozenset[str]]:
    sidecar = sidecar_from_pod(pod)
    assert sidecar is not None
    v1 = V1Seals(CONFIGMAP, UPGRADED) if accept_v1 else None
    trusted, refused, legacy = sort_sidecars(SERVER, [sidecar], [KEY], v1=v1)
    return bool(trusted), refused[0][1] if refused else "", legacy


def test_a_pod_the_previous_release_injected_counts_as_a_sidecar() -> None:
    pod = _stored_v1_pod()
    assert _sort(pod) == (True, "", frozenset({"agents/files-1"}))
    # Its seal is a v1 seal: the v2 check alone refuses it, which REMIT_ACCEPT_V1_SEALS=false is.
    assert _sort(pod, accept_v1=False) == (
        False,
        "not sealed by the webhook for this server",
        set(),
    )
    # And the webhook of this release seals v2 only: its pods are no v1 pods.
    fresh = inject({"spec": {"containers": []}}, SERVER, Settings(), KEY)
    spec = fresh["spec"]
    digest = container_digest(gateway_spec(spec) or {}, spec)
    seal = fresh["metadata"]["annotations"]["remit.dev/injection-seal"]
    assert verify([KEY], SERVER.metadata.uid, SERVER.ref, digest, seal)
    assert not verify([KEY], SERVER.metadata.uid, SERVER.ref, digest, seal, context=V1_CONTEXT)


def test_a_v1_seal_copied_into_a_pod_created_after_the_upgrade_counts_nowhere() -> None:
    pod = _stored_v1_pod()
    pod["metadata"]["creationTimestamp"] = "2026-12-01T00:00:01Z"  # after REMIT_V1_SEALS_BEFORE
    trusted, why, legacy = _sort(pod)
    assert (trusted, legacy) == (False, frozenset())
    assert why.startswith("sealed by the previous release, but created after it was replaced")
    del pod["metadata"]["creationTimestamp"]  # a pod the API server never stored: no time
    assert not _sort(pod)[0]
    # The webhook of this release never writes a v1 seal: a CREATE carrying one is a copy.
    copied = json.loads((Path(__file__).parent / "v1_pod.json").read_text())
    with pytest.raises(InjectionError, match="seal does not verify"):
        inject(copied, SERVER, Settings(), KEY)


def test_the_v1_cutoff_setting_is_an_rfc3339_time_with_an_offset() -> None:
    started = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)
    assert SigningSettings().v1_cutoff(started) == started  # unset: this process's start
    chosen = SigningSettings(v1_seals_before="2026-11-30T12:00:00Z")
    assert chosen.v1_cutoff(started) == datetime(2026, 11, 30, 12, tzinfo=UTC)
    for bad in ("yesterday", "2026-11-30T12:00:00"):
        with pytest.raises(SettingsError, match="REMIT_V1_SEALS_BEFORE"):
            SigningSettings(v1_seals_before=bad).check()


SWAPS: dict[str, tuple[str, dict[str, Any]]] = {
    "another public key": ("remit-bundle-key", {"configMap": {"name": "my-key"}}),
    "a public key with chosen items": (
        "remit-bundle-key",
        {"configMap": {"name": "remit-bundle-key", "items": [{"key": "x", "path": "public.jwk"}]}},
    ),
    "an emptyDir public key": ("remit-bundle-key", {"emptyDir": {}}),
    "another Secret as digest key": (
        "remit-audit-key",
        {"secret": {"secretName": "mine", "items": [{"key": "files", "path": "key"}]}},
    ),
    "another server's digest key": (
        "remit-audit-key",
        {
            "secret": {
                "secretName": "remit-audit-key",
                "items": [{"key": "tickets", "path": "key"}],
                "optional": False,
            }
        },
    ),
    "a digest key from a ConfigMap": ("remit-audit-key", {"configMap": {"name": "known"}}),
    "another anchors ConfigMap": ("remit-anchors", {"configMap": {"name": "mine"}}),
    "anchors from a Secret": ("remit-anchors", {"secret": {"secretName": "remit-anchors"}}),
}


def test_a_previous_release_pod_with_a_swapped_volume_is_not_a_sidecar() -> None:
    for what, (name, source) in SWAPS.items():
        pod = _stored_v1_pod()
        volume = next(v for v in pod["spec"]["volumes"] if v["name"] == name)
        for kind in ("configMap", "secret", "emptyDir"):
            volume.pop(kind, None)
        volume.update(source)
        trusted, why, _ = _sort(pod)
        assert not trusted, what
        if why == "not sealed by the webhook for this server":
            # v1 sealed the key volume's ConfigMap name and kind, not its items
            assert name == "remit-bundle-key", what
            assert "items" not in str(source), what
            continue
        # what the v1 seal let through, the direct check catches
        assert why.startswith("sealed by the previous release"), what
        assert name in why, what
    pod = _stored_v1_pod()
    pod["spec"]["volumes"] = [v for v in pod["spec"]["volumes"] if v["name"] != "remit-anchors"]
    assert not _sort(pod)[0]  # a mount whose volume is gone (would fall to the pod's own)
    pod = _stored_v1_pod()
    gateway = gateway_spec(pod["spec"])
    assert gateway is not None
    gateway["image"] = "evil:1"  # the container itself is still covered by the v1 seal
    assert _sort(pod)[1] == "not sealed by the webhook for this server"
    # An operator publishing its key under another name expects that name in v1 pods too.
    sidecar = sidecar_from_pod(_stored_v1_pod())
    assert sidecar is not None
    assert not sort_sidecars(SERVER, [sidecar], [KEY], v1=V1Seals("other-key", UPGRADED)).trusted


class PreviousSidecar:
    """The admin API of the previous release's sidecar: its status shape (no ``auditKey``),
    PUT /v1/bundle (checked with ``public_jwk`` and decoded by the frozen format-1 decoder
    when given), 405 for PUT elsewhere (it has no /v1/audit-key)."""

    def __init__(self, public_jwk: str | None = None) -> None:
        self.requests: list[tuple[str, str]] = []
        self.key = load_key(public_jwk) if public_jwk else None
        self.held: dict[str, Any] = {"digest": "d1", "serial": 1, "server": "agents/files"}

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path))
        if request.path == "/v1/bundle" and request.method == "PUT":
            body = await request.read()
            if self.key is not None:
                bundle = parse_bundle(payload_of(body.decode(), self.key))
                self.held = {"digest": bundle.digest, "serial": bundle.serial}
            return web.json_response({**self.held, "changed": True})
        if request.method != "GET":
            return web.json_response({"error": "use GET"}, status=405)
        refusals = {"counts": {}, "last": None}
        status = {"ready": True, "bundle": self.held, "server": "agents/files"}
        status |= {"bundleRefusals": refusals, "bundleDelta": True, "pins": {}, "audit": None}
        return web.json_response(status | {"consent": {"recipient": None, "holds": None}})


@asynccontextmanager
async def serving(sidecar: PreviousSidecar, ip: str, port: int) -> AsyncIterator[None]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", sidecar.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, ip, port).start()
    try:
        yield
    finally:
        await runner.cleanup()


@pytest.fixture
async def previous() -> AsyncIterator[tuple[PreviousSidecar, int]]:
    sidecar, port = PreviousSidecar(), free_port()
    async with serving(sidecar, "127.0.0.1", port):
        yield sidecar, port


async def test_the_operator_pushes_to_a_previous_release_sidecar_without_key_delivery(
    previous: tuple[PreviousSidecar, int], tmp_path: Path
) -> None:
    fake, port = previous
    document = server_document()
    document["spec"]["gateway"] = {"adminPort": port}
    server = MCPServer.model_validate(document)
    sidecar = Sidecar("agents/files-1", "agents/files", "127.0.0.1", True, True, KEY.kid, "1")
    keyring = Keyring(KEY)
    held: dict[str, tuple[str, str]] = {}
    root = b"r" * 32
    pusher = Pusher(operator_settings(tmp_path))
    try:
        # Counted by its v1 seal: no delivery, no failure (no retry), noted for this process.
        for _ in range(2):
            failed = await deliver_keys(
                pusher, keyring, server, root, [sidecar], held, {sidecar.pod}
            )
            assert failed == []
        assert held == {sidecar.pod: ("1", MOUNTED)}
        assert fake.requests == [("GET", "/v1/status")]  # asked once, never PUT a key
        outcome = await pusher.push(sidecar, port, [b"bundle"], [])
        assert outcome.ok
        assert ("PUT", "/v1/bundle") in fake.requests
        # A sidecar sealed v2 that shows no auditKey is a failure, retried as before.
        held.clear()
        failed = await deliver_keys(pusher, keyring, server, root, [sidecar], held, ())
        assert [why for _, why in failed] == ["it takes no audit key delivery"]
        # A restarted v1 sidecar (new incarnation) is asked again.
        restarted = dataclasses.replace(sidecar, incarnation="2")
        assert (
            await deliver_keys(pusher, keyring, server, root, [restarted], held, {sidecar.pod})
            == []
        )
        assert held[sidecar.pod] == ("2", MOUNTED)
    finally:
        await pusher.close()
    assert not any(path == "/v1/audit-key" for _, path in fake.requests)


def as_v1(pod: dict[str, Any], key: OKPKey, server: MCPServer) -> dict[str, Any]:
    """A pod this release's webhook injected, turned into what the previous one injected (as
    ``v1_pod.json`` shows: the digest key mounted from the namespace's Secret) and v1-sealed."""
    pod = json.loads(json.dumps(pod))
    spec = pod["spec"]
    gateway = gateway_spec(spec)
    assert gateway is not None
    for entry in gateway["env"]:
        if entry["name"] == "REMIT_AUDIT_DIGEST_KEY_DELIVERED":
            entry.clear()
            entry.update(
                {"name": "REMIT_AUDIT_DIGEST_KEY_FILE", "value": "/etc/remit/audit-key/key"}
            )
    mount = {"name": "remit-audit-key", "mountPath": "/etc/remit/audit-key", "readOnly": True}
    gateway["volumeMounts"].insert(1, mount)
    item = {"key": server.metadata.name, "path": "key"}
    secret = {"secretName": "remit-audit-key", "items": [item], "optional": False}
    at = next(i for i, v in enumerate(spec["volumes"]) if v["name"] == "remit-bundle-key")
    spec["volumes"].insert(at + 1, {"name": "remit-audit-key", "secret": secret})
    digest = container_digest_v1(gateway, spec)
    value = seal(key, server.metadata.uid or "", server.ref, digest, context=V1_CONTEXT)
    pod["metadata"]["annotations"]["remit.dev/injection-seal"] = value
    return pod


def test_as_v1_builds_what_the_previous_webhook_injected() -> None:
    fresh = inject(app_pod("files-1"), SERVER, Settings(), KEY)
    recorded = json.loads((Path(__file__).parent / "v1_pod.json").read_text())
    built = as_v1(fresh, KEY, SERVER)
    assert gateway_spec(built["spec"]) == gateway_spec(recorded["spec"])
    assert built["spec"]["volumes"] == recorded["spec"]["volumes"]
    seal_of = "remit.dev/injection-seal"
    assert built["metadata"]["annotations"][seal_of] == recorded["metadata"]["annotations"][seal_of]


async def test_a_running_operator_keeps_governing_a_previous_release_pod(
    k8s: kmock.KubernetesEmulator,
    operator: RunningOperator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="remit_operator")
    ip, other_ip = "127.0.0.51", "127.0.0.52"
    admin_port = free_everywhere([ip, other_ip])
    doc = server_doc("https://idp.example.com/realms/acme", "https://idp.example.com/jwks",
                     free_everywhere([ip, other_ip]), admin_port)  # fmt: skip
    await apply(k8s, doc)
    name = operator.settings.signing.public_key_configmap
    configmap = await eventually(lambda: stored(k8s, "v1/configmaps", NAMESPACE, name))
    stored_server = await eventually(lambda: stored(k8s, f"{API}/mcpservers", NAMESPACE, "files"))
    server = MCPServer.model_validate(stored_server)
    signing = operator.runtime.keyring.active
    old = PreviousSidecar(configmap["data"]["public.jwk"])
    swapped = PreviousSidecar(configmap["data"]["public.jwk"])
    pods = {}
    for pod_ip, pod_name in ((ip, "files-51"), (other_ip, "files-52")):
        v1 = as_v1(await injected(operator.settings, app_pod(pod_name)), signing, server)
        v1["metadata"]["creationTimestamp"] = "2026-11-30T10:00:00Z"  # before this process
        pods[pod_name] = SidecarProcess(v1, pod_ip, "http://127.0.0.1:9", tmp_path / "k")
    anchors = next(
        v for v in pods["files-52"].pod["spec"]["volumes"] if v["name"] == "remit-anchors"
    )
    anchors["configMap"]["name"] = "mine"  # the one thing v1's seal did not cover
    async with serving(old, ip, admin_port), serving(swapped, other_ip, admin_port):
        for sidecar in pods.values():
            response = await k8s.post(
                f"/api/v1/namespaces/{NAMESPACE}/pods", json=sidecar.pod_object()
            )
            assert response.status < 300

        def in_sync() -> str | None:
            condition = (status_of(k8s, "MCPServer", "files").get("conditions") or [{}])[0]
            message = str(condition.get("message", ""))
            return message if message.startswith("1/1 sidecars run bundle") else None

        message = await eventually(in_sync, timeout=15)
        assert message.endswith(str(old.held["digest"]))  # the v1 pod's sidecar holds it
        untrusted = await eventually(lambda: events(k8s, "UntrustedSidecar"))
        assert [e["message"].split(":")[0] for e in untrusted] == [f"{NAMESPACE}/files-52"]
        assert "remit-anchors" in untrusted[0]["message"]
        assert swapped.requests == []  # never pushed to nor read
        assert not any(path == "/v1/audit-key" for _, path in old.requests)
        statuses = sum(1 for request in old.requests if request == ("GET", "/v1/status"))
    assert statuses <= 2  # read once for its key (a periodic check may read it once more)
    about = [r.getMessage() for r in caplog.records if f"{NAMESPACE}/files-51" in r.getMessage()]
    assert f"{NAMESPACE}/files: pod {NAMESPACE}/files-51 reads its digest key from its mount" in (
        about
    )
    assert not [m for m in about if "audit key" in m]  # no failed delivery, hence no retry
