"""Render and lint the Remit chart with Helm's own Go SDK (helm-python-sdk); no helm binary.

Renders are cached per values, so the many assertions over one render cost one render.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "remit"
RELEASE = "remit"
NAMESPACE = "remit-system"

# Kinds that only exist with a CRD installed: not in Kubernetes' own schemas.
CUSTOM_KINDS = frozenset(
    {"ServiceMonitor", "Certificate", "Issuer", "ClusterKopfPeering", "PrometheusRule"}
)


@functools.cache
def _chart() -> helm.Chart:
    return helm.Chart.load(CHART)


@functools.cache
def _render(values_json: str) -> tuple[tuple[str, str], ...]:
    values = json.loads(values_json)
    out = _chart().render(values or None, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return tuple(sorted(out.items()))


def render(values: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Template path to rendered text, as `helm template` would produce."""
    return dict(_render(json.dumps(values or {}, sort_keys=True)))


def manifests(values: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every rendered Kubernetes object (NOTES.txt excluded), in template order."""
    objects: list[dict[str, Any]] = []
    for path, text in render(values).items():
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(d for d in yaml.safe_load_all(text) if d)
    return objects


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one object of ``kind`` (and ``name``); fails the test if it is not exactly one."""
    hits = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, found {len(hits)}"
    return hits[0]


def kinds(objects: list[dict[str, Any]]) -> list[str]:
    """The kinds rendered, sorted."""
    return sorted(o["kind"] for o in objects)


def lint(values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`helm lint --strict` report for these values."""
    return helm.lint(CHART, dict(values) if values else None, strict=True, namespace=NAMESPACE)


def validate_values(values: Mapping[str, Any]) -> None:
    """Check values against values.schema.json; raise helm.HelmValuesError if they fail."""
    _chart().validate_schema(dict(values))


def containers(objects: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every container of every Deployment."""
    for o in objects:
        if o["kind"] == "Deployment":
            yield from o["spec"]["template"]["spec"]["containers"]


def load_yaml(path: Path) -> list[dict[str, Any]]:
    """The documents of a YAML file."""
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
