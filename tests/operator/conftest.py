"""Fixtures for operator tests: kmock's Kubernetes emulator with every resource declared, the
real kopf runtime running Remit's handlers, an OIDC issuer and the demo MCP server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import kmock
import pytest

from remit.demo.issuer import Issuer
from tests.operator.support import (
    RunningOperator,
    declare_resources,
    operator_settings,
    running_operator,
)
from tests.support.servers import files_server


@pytest.fixture
def k8s(kmock: kmock.KubernetesEmulator) -> kmock.KubernetesEmulator:
    """The emulator, with every resource kopf and the operator list, watch or write."""
    declare_resources(kmock)
    return kmock


@pytest.fixture
async def operator(k8s: kmock.KubernetesEmulator, tmp_path: Path) -> AsyncIterator[RunningOperator]:
    """The operator running against the emulator (its webhook on a loopback port)."""
    async with running_operator(k8s, operator_settings(tmp_path)) as running:
        yield running


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    """A real OIDC issuer on loopback."""
    with Issuer() as running:
        yield running


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    """The demo MCP files server (what runs next to the sidecar in the pod)."""
    with files_server() as url:
        yield url
