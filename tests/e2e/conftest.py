"""Real-cluster fixtures: skip unless --e2e was given and the cluster answers with Remit's CRDs."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def cluster(pytestconfig: pytest.Config) -> Any:
    """A kubernetes ApiClient for the current context, or skip."""
    if not pytestconfig.getoption("--e2e"):
        pytest.skip("end-to-end: pass --e2e")
    try:
        from kubernetes import client, config  # noqa: PLC0415 - only for e2e

        config.load_kube_config()
        api = client.ApiClient()
        client.VersionApi(api).get_code(_request_timeout=5)
        client.ApiextensionsV1Api(api).read_custom_resource_definition("mcpservers.remit.dev")
    except Exception as exc:  # noqa: BLE001 - any failure means "no usable cluster"
        pytest.skip(f"no reachable cluster with Remit installed: {exc}")
    return api


@pytest.fixture
def namespace(cluster: Any) -> Iterator[str]:
    """A fresh namespace labelled for injection, deleted afterwards."""
    from kubernetes import client  # noqa: PLC0415

    core = client.CoreV1Api(cluster)
    name = f"remit-e2e-{uuid.uuid4().hex[:6]}"
    core.create_namespace(
        {"metadata": {"name": name, "labels": {"remit.dev/injection": "enabled"}}}
    )
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="session")
def image() -> str:
    """An image with Remit installed (runs the demo MCP server); REMIT_E2E_IMAGE."""
    value = os.environ.get("REMIT_E2E_IMAGE")
    if not value:
        pytest.skip("set REMIT_E2E_IMAGE to an image with remit installed")
    return value
