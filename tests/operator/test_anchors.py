"""Anchors: what the operator keeps outside the pods, what it mounts into them, and the seal
that makes a pod whose mounted volumes were pointed elsewhere no sidecar."""

from __future__ import annotations

import copy
import json
from typing import Any

import kmock
import pytest

from remit.api.mcpserver import MCPServer
from remit.policy.signing import generate_key
from remit_operator.anchors import (
    MAX_ANCHORS,
    AnchorKeeper,
    anchor_key,
    merge_anchors,
    valid_head,
)
from remit_operator.errors import InjectionError, NotFoundError
from remit_operator.gatewayspec import evidence_volumes, gateway_container, telemetry_env
from remit_operator.index import gateway_spec
from remit_operator.seal import container_digest, verify
from remit_operator.settings import Settings
from remit_operator.webhook import inject
from tests.operator.support import (
    RunningOperator,
    admission_review,
    app_pod,
    apply,
    patched,
    send_review,
)
from tests.support.policies import server

HEAD_A, HEAD_B = "a" * 64, "b" * 64


def test_heads_are_merged_per_pod_and_unchanged_heads_write_nothing() -> None:
    first = merge_anchors({}, "agents/files", [("agents/files-1", HEAD_A)], "t1")
    assert first is not None
    assert json.loads(first["files.files-1"]) == {
        "head": HEAD_A, "time": "t1", "server": "agents/files"
    }  # fmt: skip
    assert merge_anchors(first, "agents/files", [("agents/files-1", HEAD_A)], "t2") is None
    second = merge_anchors(first, "agents/files", [("agents/files-2", HEAD_B)], "t2")
    assert second is not None
    assert set(second) == {"files.files-1", "files.files-2"}  # a gone pod's anchor stays


def test_the_oldest_anchors_go_beyond_the_bound() -> None:
    full = {
        f"files.p{i}": json.dumps({"head": HEAD_A, "time": f"t{i:05d}"}) for i in range(MAX_ANCHORS)
    }
    merged = merge_anchors(full, "agents/files", [("agents/new", HEAD_B)], "t99999")
    assert merged is not None
    assert len(merged) == MAX_ANCHORS
    assert "files.p0" not in merged
    assert "files.new" in merged


def test_only_a_hash_shaped_head_is_kept() -> None:
    assert valid_head(HEAD_A) == HEAD_A
    for hostile in ("A" * 64, "a" * 63, 7, None, "../../etc", "a" * 65):
        assert valid_head(hostile) is None


async def test_the_sidecar_mounts_the_anchors_and_waits_for_a_delivered_digest_key(
    k8s: kmock.KubernetesEmulator, operator: RunningOperator
) -> None:
    await apply(k8s, server("files", telemetry={"otlpEndpoint": "http://otel:4318"}))
    pod = app_pod("files-1")
    injected = patched(pod, await send_review(operator.settings, admission_review(pod)))
    gateway = next(c for c in injected["spec"]["containers"] if c["name"] == "remit-gateway")
    env = {e["name"]: e.get("value") for e in gateway["env"]}
    assert env["REMIT_AUDIT_DIGEST_KEY_DELIVERED"] == "true"
    assert "REMIT_AUDIT_DIGEST_KEY_FILE" not in env
    assert env["REMIT_AUDIT_ANCHOR_FILE"] == "/etc/remit/anchors/files.$(REMIT_POD_NAME)"
    assert env["REMIT_OTLP_ENDPOINT"] == "http://otel:4318"
    volumes = {v["name"]: v for v in injected["spec"]["volumes"]}
    assert volumes["remit-anchors"]["configMap"] == {"name": "remit-anchors", "optional": True}
    # No key in the pod spec: no Secret volume at all, nothing a pod author could swap.
    assert not [v for v in volumes.values() if "secret" in v]
    assert "remit-audit-key" not in json.dumps(injected)


def test_no_tracing_variables_without_an_endpoint() -> None:
    document = server("files")
    resource = MCPServer.model_validate(document)
    assert telemetry_env(resource, Settings()) == []
    env = {e["name"] for e in gateway_container(resource, Settings())["env"]}
    assert not {n for n in env if "OTLP" in n or "TRACE" in n}
    assert [v["name"] for v in evidence_volumes()] == ["remit-anchors"]


# --- the seal covers every volume the gateway mounts ----------------------------------------

SIGNING = generate_key()


def _sealed_pod() -> tuple[MCPServer, dict[str, Any]]:
    document = server("files")
    document["metadata"]["uid"] = "3c6e6f1e-0000-4000-8000-000000000001"
    resource = MCPServer.model_validate(document)
    pod = {"metadata": {"name": "files-1", "namespace": "agents"}, "spec": {"containers": []}}
    pod["spec"]["containers"].append({"name": "files", "image": "files:1"})
    return resource, inject(pod, resource, Settings(), SIGNING)


def _is_sidecar(resource: MCPServer, pod: dict[str, Any]) -> bool:
    spec = pod["spec"]
    digest = container_digest(gateway_spec(spec) or {}, spec)
    value = pod["metadata"]["annotations"]["remit.dev/injection-seal"]
    return verify([SIGNING], resource.metadata.uid, resource.ref, digest, value)


def _volume(pod: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(v for v in pod["spec"]["volumes"] if v["name"] == name)
    return found


def test_a_pod_whose_anchors_or_key_volume_was_swapped_is_not_a_sidecar() -> None:
    resource, pod = _sealed_pod()
    assert _is_sidecar(resource, pod)
    swaps = {
        "another anchors ConfigMap": ("remit-anchors", {"configMap": {"name": "mine"}}),
        "anchors from a Secret": ("remit-anchors", {"secret": {"secretName": "remit-anchors"}}),
        "anchors required": (
            "remit-anchors",
            {"configMap": {"name": "remit-anchors", "optional": False}},
        ),
        "another public key": ("remit-bundle-key", {"configMap": {"name": "my-key"}}),
        "an emptyDir public key": ("remit-bundle-key", {"emptyDir": {}}),
    }
    for what, (name, source) in swaps.items():
        swapped = copy.deepcopy(pod)
        volume = _volume(swapped, name)
        for kind in ("configMap", "secret", "emptyDir"):
            volume.pop(kind, None)
        volume.update(source)
        assert not _is_sidecar(resource, swapped), what


def test_what_the_api_server_defaults_does_not_break_the_seal() -> None:
    resource, pod = _sealed_pod()
    stored_pod = copy.deepcopy(pod)
    for volume in stored_pod["spec"]["volumes"]:
        volume["configMap"]["defaultMode"] = 420  # as the API server stores it
    assert _is_sidecar(resource, stored_pod)


def test_a_pod_bringing_its_own_gateway_volume_is_refused() -> None:
    resource, _ = _sealed_pod()
    for name in ("remit-bundle-key", "remit-anchors"):
        pod = {
            "metadata": {"name": "files-1", "namespace": "agents"},
            "spec": {
                "containers": [{"name": "files", "image": "files:1"}],
                "volumes": [{"name": name, "configMap": {"name": "mine"}}],
            },
        }
        with pytest.raises(InjectionError, match=f"already has volume.*{name}"):
            inject(pod, resource, Settings(), SIGNING)


class _SharedConfigMap:
    """A ConfigMap store where another writer adds its anchor right after every read."""

    def __init__(self, data: dict[str, str] | None) -> None:
        self.data = data
        self.writes: list[str] = []

    async def get(self, path: str) -> dict[str, Any]:
        if self.data is None:
            raise NotFoundError(404, path)
        seen = {"data": dict(self.data)}
        self.data["other.pod-x"] = json.dumps({"head": "b" * 64, "time": "t", "server": "ns/other"})
        return seen

    async def create(self, collection: str, body: dict[str, Any]) -> dict[str, Any]:
        self.writes.append("create")
        self.data = dict(body["data"])
        return body

    async def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.writes.append("patch")
        assert self.data is not None
        for key, value in body["data"].items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value
        return {"data": self.data}


async def test_an_anchor_written_meanwhile_by_another_server_is_kept() -> None:
    store = _SharedConfigMap({})

    class _Runtime:
        kube = store

    wrote = await AnchorKeeper(_Runtime()).anchor("ns/files", [("ns/pod-a", "a" * 64)], "now")
    assert wrote
    assert store.writes == ["patch"]
    assert store.data is not None
    assert "other.pod-x" in store.data  # the concurrent writer's key survived our write
    assert json.loads(store.data[anchor_key("files", "pod-a")])["head"] == "a" * 64
