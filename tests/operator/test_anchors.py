"""Anchors and digest keys: what the operator keeps outside the pods, and what it mounts."""

from __future__ import annotations

import json

import kmock

from remit.api.mcpserver import MCPServer
from remit_operator.anchors import MAX_ANCHORS, merge_anchors, valid_head
from remit_operator.settings import Settings
from remit_operator.webhook import evidence_volumes, gateway_container, telemetry_env
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


async def test_the_sidecar_mounts_its_digest_key_and_the_anchors(
    k8s: kmock.KubernetesEmulator, operator: RunningOperator
) -> None:
    await apply(k8s, server("files", telemetry={"otlpEndpoint": "http://otel:4318"}))
    pod = app_pod("files-1")
    injected = patched(pod, await send_review(operator.settings, admission_review(pod)))
    gateway = next(c for c in injected["spec"]["containers"] if c["name"] == "remit-gateway")
    env = {e["name"]: e.get("value") for e in gateway["env"]}
    assert env["REMIT_AUDIT_DIGEST_KEY_FILE"] == "/etc/remit/audit-key/key"
    assert env["REMIT_AUDIT_ANCHOR_FILE"] == "/etc/remit/anchors/files.$(REMIT_POD_NAME)"
    assert env["REMIT_OTLP_ENDPOINT"] == "http://otel:4318"
    volumes = {v["name"]: v for v in injected["spec"]["volumes"]}
    assert volumes["remit-audit-key"]["secret"] == {
        "secretName": "remit-audit-key", "items": [{"key": "files", "path": "key"}],
        "optional": False,
    }  # fmt: skip
    assert volumes["remit-anchors"]["configMap"] == {"name": "remit-anchors", "optional": True}


def test_no_tracing_variables_without_an_endpoint() -> None:
    document = server("files")
    resource = MCPServer.model_validate(document)
    assert telemetry_env(resource, Settings()) == []
    env = {e["name"] for e in gateway_container(resource, Settings())["env"]}
    assert not {n for n in env if "OTLP" in n or "TRACE" in n}
    assert [v["name"] for v in evidence_volumes(resource)] == ["remit-audit-key", "remit-anchors"]
