"""The operator's own API client against the emulator: creating what another writer creates."""

from __future__ import annotations

import asyncio

import kmock
import kopf

from remit_operator.kube import KubeClient, object_path
from tests.operator.support import NAMESPACE, stored


async def test_ensure_survives_a_concurrent_create(k8s: kmock.KubernetesEmulator) -> None:
    """Two replicas (or two syncs) both see 404 and both POST: the loser gets 409 AlreadyExists
    and must read and patch the object instead of failing."""
    kube = KubeClient(kopf.ConnectionInfo(server=str(k8s.url).rstrip("/")))
    collection = object_path("v1", "configmaps", NAMESPACE)

    def body(value: str) -> dict[str, object]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "raced", "namespace": NAMESPACE, "labels": {"a": "b"}},
            "data": {"public.jwk": value},
        }

    try:
        results = await asyncio.gather(*(kube.ensure(collection, body("v1")) for _ in range(8)))
        assert any(results)
        posts = [r for r in k8s if r.method == kmock.method.POST]
        assert len(posts) > 1, "the writers did not race; the test proves nothing"
        await asyncio.gather(
            kube.ensure(collection, body("v2")), kube.ensure(collection, body("v2"))
        )
    finally:
        await kube.close()
    stored_map = stored(k8s, "v1/configmaps", NAMESPACE, "raced")
    assert stored_map is not None
    assert stored_map["data"] == {"public.jwk": "v2"}
