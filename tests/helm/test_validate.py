"""Every rendered manifest is valid Kubernetes (strict schemas) for the supported versions;
the example custom resources are valid against the CRDs the chart installs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from tests.helm.chart import CUSTOM_KINDS, ROOT, load_yaml, manifests
from tests.helm.values import ALL

# The three most recent minor versions kubernetes-validate ships schemas for.
KUBERNETES_VERSIONS = ("1.35", "1.36", "1.37")
CUSTOM_RESOURCE_FILES = sorted(
    p for p in (ROOT / "examples").rglob("*.yaml") if p.parent.name != "tests"
)


def _distinct_objects() -> dict[str, tuple[str, dict[str, Any]]]:
    """Every object any value set renders, once (most are the same across value sets)."""
    seen: dict[str, tuple[str, dict[str, Any]]] = {}
    for name in sorted(ALL):
        for obj in manifests(ALL[name]):
            if obj["kind"] not in CUSTOM_KINDS:
                seen.setdefault(json.dumps(obj, sort_keys=True), (name, obj))
    return seen


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendered_manifests_are_valid_kubernetes(version: str) -> None:
    objects = _distinct_objects()
    problems = []
    for name, obj in objects.values():
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = f"{obj['kind']}/{obj['metadata']['name']}"
            problems.append(f"{name}: {where}: {exc.message} at {list(exc.path)}")
    assert not problems, "\n".join(problems)
    assert len(objects) >= 30


def test_validation_catches_a_broken_manifest() -> None:
    (deployment,) = [o for o in manifests() if o["kind"] == "Deployment"]
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for crd in (o for o in manifests() if o["kind"] == "CustomResourceDefinition"):
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


@pytest.mark.parametrize("path", CUSTOM_RESOURCE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_example_resources_match_the_crd_schemas(path: Path) -> None:
    schemas = _crd_schemas()
    for document in load_yaml(path):
        key = (document.get("apiVersion", ""), document.get("kind", ""))
        if not key[0].startswith("remit.dev/"):
            continue
        assert key in schemas, f"{path}: no CRD serves {key}"
        errors = sorted(jsonschema.Draft7Validator(schemas[key]).iter_errors(document), key=str)
        assert not errors, f"{path}: {document['metadata']['name']}: {errors[0].message}"


def test_crd_schema_rejects_an_unknown_effect() -> None:
    schema = _crd_schemas()[("remit.dev/v1alpha1", "AgentPolicy")]
    bad = {
        "apiVersion": "remit.dev/v1alpha1",
        "kind": "AgentPolicy",
        "metadata": {"name": "x"},
        "spec": {"agents": ["a"], "servers": ["s"], "rules": [{"name": "r", "effect": "Maybe"}]},
    }
    assert list(jsonschema.Draft7Validator(schema).iter_errors(bad))
