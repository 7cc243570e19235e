"""Item 3: admission for real. The API server calls the operator's webhook over TLS through the
chart's MutatingWebhookConfiguration (Service reference, caBundle); with the operator down,
``failurePolicy: Fail`` refuses governed pods and nothing else."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from remit.demo.issuer import Issuer
from tests.kube.cluster import namespace, wait_for
from tests.kube.controlplane import ApiError, ControlPlane
from tests.kube.operator import OperatorProcess
from tests.kube.world import ENABLED, app_pod, injected, mcpserver


@pytest.fixture(scope="module")
def governed(
    control_plane: ControlPlane, operator: OperatorProcess, issuer: Issuer
) -> Iterator[str]:
    """A namespace with injection enabled and an MCPServer selecting app=files-mcp."""
    api = control_plane.admin
    with namespace(api, "admission", ENABLED) as ns:
        api.create(mcpserver(ns, issuer.issuer, issuer.jwks_uri))
        yield ns


def test_a_generate_name_pod_in_an_enabled_namespace_is_injected(
    control_plane: ControlPlane, governed: str
) -> None:
    created = control_plane.admin.create(app_pod(governed))
    assert created["metadata"]["name"].startswith("files-")
    assert injected(created)
    annotations = created["metadata"]["annotations"]
    assert annotations["remit.dev/mcpserver"] == "files"


def test_a_labelled_pod_is_injected_in_any_namespace(
    control_plane: ControlPlane, operator: OperatorProcess, issuer: Issuer
) -> None:
    api = control_plane.admin
    with namespace(api, "labelled") as ns:
        api.create(mcpserver(ns, issuer.issuer, issuer.jwks_uri))
        pod = app_pod(ns, {"app": "files-mcp", "remit.dev/inject": "true"})
        assert injected(api.create(pod))


def test_pods_matching_no_server_and_pods_elsewhere_are_untouched(
    control_plane: ControlPlane, governed: str
) -> None:
    api = control_plane.admin
    assert not injected(api.create(app_pod(governed, {"app": "other"})))
    with namespace(api, "plain") as ns:
        assert not injected(api.create(app_pod(ns)))
    for system in ("kube-system", "remit-system"):
        pod = app_pod(system, {"app": "files-mcp", "remit.dev/inject": "true"})
        assert not injected(api.create(pod))


def test_with_the_operator_down_governed_pods_are_refused_and_nothing_else(
    control_plane: ControlPlane, operator: OperatorProcess, governed: str
) -> None:
    api = control_plane.admin
    operator.stop()
    try:
        with pytest.raises(ApiError) as refused:
            api.create(app_pod(governed))
        assert refused.value.status >= 500 or refused.value.status == 403
        assert "failed calling webhook" in refused.value.message
        labelled = app_pod(governed, {"app": "x", "remit.dev/inject": "true"})
        with pytest.raises(ApiError):
            api.create(labelled)
        with namespace(api, "plain-down") as ns:
            assert not injected(api.create(app_pod(ns)))
        assert not injected(api.create(app_pod("kube-system", {"remit.dev/inject": "true"})))
    finally:
        operator.start()
        operator.wait_ready()
    created = wait_for(lambda: _try_create(control_plane, governed), timeout=30)
    assert injected(created)


def _try_create(control_plane: ControlPlane, ns: str) -> dict | None:  # type: ignore[type-arg]
    try:
        return control_plane.admin.create(app_pod(ns))
    except ApiError:
        return None
