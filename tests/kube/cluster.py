"""Helpers over the real API server: install CRDs, make throwaway namespaces, wait for things."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.kube.controlplane import Api, ApiError

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
T = TypeVar("T")


def install_crds(api: Api) -> list[dict[str, Any]]:
    """Apply every CRD in crds/ and wait until the server serves them."""
    docs = [yaml.safe_load(p.read_text()) for p in sorted(CRDS.glob("*.yaml"))]
    for doc in docs:
        api.apply(doc)
    for doc in docs:
        name = doc["metadata"]["name"]

        def established(name: str = name) -> bool:
            crd = api.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, name)
            conditions = ((crd or {}).get("status") or {}).get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

        wait_for(established, timeout=30)
    wait_for(lambda: _served(api), timeout=30)
    return docs


def _served(api: Api) -> bool:
    try:
        api._resources.clear()
        api.resource("remit.dev/v1alpha1", "ConsentGrant")
    except (KeyError, ApiError):
        return False
    return True


def wait_for(check: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {check}")
        time.sleep(interval)


@contextmanager
def namespace(api: Api, prefix: str, labels: dict[str, str] | None = None) -> Iterator[str]:
    """A fresh namespace, deleted afterwards (without waiting for it to go)."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    api.create(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": labels or {}},
        }
    )
    try:
        yield name
    finally:
        api.delete("v1", "Namespace", None, name)
