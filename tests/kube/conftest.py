"""The real-API-server tier: one control plane per test session, shared by every test here.

The binaries are built by ``scripts/control_plane.py`` (``make control-plane``; ``make test``
tries it first). Without them these tests skip, saying so; with ``REMIT_REQUIRE_CONTROL_PLANE=1``
(CI) they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from remit.demo.issuer import Issuer
from tests.kube.cluster import wait_for
from tests.kube.consent import ConsentProcess, consent_values
from tests.kube.controlplane import ControlPlane, binaries
from tests.kube.kubelet import Kubelet
from tests.kube.operator import (
    NAMESPACE,
    Installation,
    OperatorProcess,
    install,
    publish_endpoints,
)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """etcd, kube-apiserver and kube-controller-manager on a random loopback address."""
    found = binaries()
    if found is None:
        message = (
            "kube-apiserver/kube-controller-manager/etcd not built: run `make control-plane` "
            "(scripts/control_plane.py, needs Go and the Go module proxy)"
        )
        if os.environ.get("REMIT_REQUIRE_CONTROL_PLANE"):
            pytest.fail(message)
        pytest.skip(message)
    plane = ControlPlane(found)
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def installation(control_plane: ControlPlane, issuer: Issuer) -> Installation:
    """The chart, rendered with helm-python-sdk and applied (all but the Deployments).

    ``signingKey.create: false``: the operator itself must create the signing key.
    ``consent.enabled``: the operator delivers the consent link key to every sidecar, and the
    consent service (``consent_service``) runs at a loopback address, logging in at ``issuer``.
    """
    consent = {**consent_values(), "issuer": issuer.issuer}
    return install(control_plane, {"signingKey": {"create": False}, "consent": consent})


@pytest.fixture(scope="module")
def consent_service(
    installation: Installation,
    operator: OperatorProcess,
    issuer: Issuer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ConsentProcess]:
    """``remit consent`` as the chart's consent Deployment runs it, ready. It mounts the link
    key Secret, which the operator creates on its first delivery to a sidecar: started once
    it exists, like the pod whose volume waits for it (module-scoped, so a module's own
    sidecars, set up first, lead the operator to make it)."""
    api = installation.plane.admin
    key_secret = installation.values["consent"].get("keySecretName", "remit-consent-key")
    wait_for(lambda: api.get("v1", "Secret", NAMESPACE, key_secret), timeout=60)
    service = ConsentProcess(installation, tmp_path_factory.mktemp("consent"))
    issuer.login.register(
        "remit-consent", installation.values["consent"]["publicUrl"] + "/callback"
    )
    service.start()
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def operator(
    installation: Installation, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """One replica of ``remit operator``, as the chart's Deployment runs it, ready."""
    replica = OperatorProcess(installation, tmp_path_factory.mktemp("operator"))
    replica.start()
    try:
        replica.wait_ready()
        publish_endpoints(installation, [replica])
        yield replica
    finally:
        replica.stop()


@pytest.fixture(scope="session")
def kubelet(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Kubelet]:
    """The kubelet stand-in: runs injected pods as processes on their own loopback IPs."""
    running = Kubelet(control_plane.admin, tmp_path_factory.mktemp("kubelet"))
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="session")
def issuer() -> Iterator[Issuer]:
    """A real OIDC issuer on loopback (agents' tokens)."""
    with Issuer() as running:
        yield running
