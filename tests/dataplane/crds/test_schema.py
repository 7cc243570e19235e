"""The generated CRDs are valid Kubernetes objects with structural schemas the API server takes.

Checked offline: against the CRD schemas of every Kubernetes release kubernetes-validate ships
(strict), by walking each schema for what makes one non-structural, and by running every
default through the schema and CEL rules of its node, as the API server does on create.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from remit.api.crdgen import RESOURCES, crds
from remit.api.loader import parse
from tests.dataplane.crds.apiserver import admit, rule_failures, schema_errors

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
# fieldPath in x-kubernetes-validations exists from 1.28 on.
VERSIONS = sorted(
    {v for v in all_versions() if tuple(map(int, v.split(".")[:2])) >= (1, 28)},
    key=lambda v: tuple(map(int, v.split("."))),
)
FORBIDDEN = {"$ref", "$schema", "id", "definitions", "anyOf", "oneOf", "allOf", "not", "const"}
FORBIDDEN |= {"additionalItems", "patternProperties", "dependencies", "title", "nullable"}
DEFINITIONS = crds()


def _by_kind(kind: str) -> dict[str, Any]:
    return next(d for d in DEFINITIONS if d["spec"]["names"]["kind"] == kind)


def _schema(definition: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = definition["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any], bool]]:
    """Every schema node with its path and whether it sits under additionalProperties."""
    yield path, node, False
    for key, sub in node.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{key}")
    if "items" in node:
        yield from _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        for where, sub, _ in _nodes(node["additionalProperties"], f"{path}.*"):
            yield where, sub, True


def _all_nodes() -> Iterator[tuple[str, str, dict[str, Any], bool]]:
    for definition in DEFINITIONS:
        for path, node, under_map in _nodes(_schema(definition)):
            yield definition["spec"]["names"]["kind"], path, node, under_map


def test_versions_cover_at_least_1_29_to_1_33() -> None:
    assert {"1.29", "1.33"} <= {v.rsplit(".", 1)[0] for v in VERSIONS}, VERSIONS


@pytest.mark.parametrize("version", VERSIONS)
def test_every_crd_validates_strictly_against_kubernetes(version: str) -> None:
    for definition in DEFINITIONS:
        kubernetes_validate.validate(definition, version, strict=True)


def test_kubernetes_validate_catches_a_bad_crd() -> None:
    broken = yaml.safe_load(yaml.safe_dump(DEFINITIONS[0]))
    broken["spec"]["versions"][0]["served"] = "yes"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.KIND)
def test_names_scope_and_subresources_follow_the_model(resource: Any) -> None:
    definition = _by_kind(resource.KIND)
    spec = definition["spec"]
    assert definition["metadata"]["name"] == f"{resource.PLURAL}.remit.dev"
    assert spec["group"] == "remit.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["plural"] == resource.PLURAL
    assert spec["names"]["shortNames"] == list(resource.SHORT_NAMES)
    assert spec["names"]["categories"] == ["remit"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1"
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}
    schema = _schema(definition)
    assert schema["required"] == ["spec"]
    assert schema["properties"]["metadata"] == {"type": "object"}


def test_every_node_is_typed_and_uses_no_non_structural_keyword() -> None:
    for kind, path, node, _ in _all_nodes():
        where = f"{kind}{path}"
        assert "type" in node or node.get("x-kubernetes-int-or-string"), where
        assert not FORBIDDEN & set(node), f"{where}: {FORBIDDEN & set(node)}"
        assert not ("properties" in node and "additionalProperties" in node), where
        if "additionalProperties" in node:
            assert isinstance(node["additionalProperties"], dict), where
        if node["type"] == "array":
            assert isinstance(node.get("items"), dict), where


def test_defaults_are_pruned_and_valid_where_the_api_server_allows_them() -> None:
    checked = 0
    for kind, path, node, under_map in _all_nodes():
        if "default" not in node:
            continue
        where = f"{kind}{path}"
        assert not under_map, f"{where}: defaults are forbidden under additionalProperties"
        assert not path.startswith(".metadata"), where
        default = node["default"]
        assert schema_errors(node, default) == [], where
        assert rule_failures(node, default) == [], where
        if isinstance(default, dict):
            assert set(default) <= set(node.get("properties", {})), f"{where}: not pruned"
        checked += 1
    assert checked >= 10


def test_every_spec_field_is_documented() -> None:
    for kind, path, node, under_map in _all_nodes():
        if path.startswith(".spec") and not under_map and not path.endswith("[]"):
            assert node.get("description"), f"{kind}{path} has no description"


def test_rules_are_well_formed_and_name_real_fields() -> None:
    count = 0
    for kind, path, node, _ in _all_nodes():
        for rule in node.get("x-kubernetes-validations", []):
            assert set(rule) <= {"rule", "message", "fieldPath"}, f"{kind}{path}"
            assert rule["message"], f"{kind}{path}"
            if "fieldPath" in rule:
                assert rule["fieldPath"].lstrip(".") in node["properties"], f"{kind}{path}"
            count += 1
    assert count == 10


def test_iterating_rules_only_walk_bounded_collections() -> None:
    """The API server refuses CRDs whose rules could cost too much; bounds keep them cheap."""
    macro = re.compile(r"self\.(\w+)\.(?:all|exists|exists_one|filter|map)\(")
    for kind, path, node, _ in _all_nodes():
        for rule in node.get("x-kubernetes-validations", []):
            for field in macro.findall(rule["rule"]):
                walked = node["properties"][field]
                bound = walked.get("maxItems") or walked.get("maxProperties")
                assert bound, f"{kind}{path}.{field} needs maxItems/maxProperties"


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.KIND)
def test_printer_columns_point_at_schema_fields(resource: Any) -> None:
    definition = _by_kind(resource.KIND)
    schema = _schema(definition)
    columns = definition["spec"]["versions"][0]["additionalPrinterColumns"]
    assert columns[-1] == {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
    }
    for column in columns[:-1]:
        path = column["jsonPath"]
        selected = re.search(r'\[\?\(@\.(\w+)=="\w+"\)\]', path)
        node = schema
        for part in re.sub(r'\[\?\(@\.\w+=="\w+"\)\]', ".[]", path).strip(".").split("."):
            if part == "[]":
                node = node["items"]
                assert selected is not None
                assert selected.group(1) in node["properties"], column
            else:
                node = node["properties"][part]
        kinds = {"integer": ["integer"], "string": ["string", "array"]}[column["type"]]
        assert node["type"] in kinds, column


def test_printer_columns_are_the_agreed_ones() -> None:
    def names(kind: str) -> list[tuple[str, int]]:
        columns = _by_kind(kind)["spec"]["versions"][0]["additionalPrinterColumns"]
        return [(c["name"], c.get("priority", 0)) for c in columns]

    assert names("MCPServer") == [
        ("Ready", 0),
        ("Digest", 1),
        ("In-Sync", 0),
        ("Desired", 0),
        ("Age", 0),
    ]
    assert names("AgentPolicy") == [("Accepted", 0), ("Agents", 0), ("Servers", 1), ("Age", 0)]
    assert [n for n, _ in names("ConsentGrant")] == [
        "Phase",
        "Subject",
        "Agent",
        "Server",
        "Expires",
        "Age",
    ]


def test_consent_grants_must_expire() -> None:
    spec = _schema(_by_kind("ConsentGrant"))["properties"]["spec"]
    assert "expiresAt" in spec["required"]
    assert spec["properties"]["expiresAt"]["format"] == "date-time"


def _examples() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for index, document in enumerate(yaml.safe_load_all(path.read_text())):
            if document:
                found.append((f"{path.name}#{index}", document))
    return found


@pytest.mark.parametrize(("source", "document"), _examples(), ids=[s for s, _ in _examples()])
def test_examples_are_admitted_by_the_crds_and_the_models(
    source: str, document: dict[str, Any]
) -> None:
    assert admit(document) == [], source
    parse(document, source)


def test_examples_cover_every_kind() -> None:
    assert {d["kind"] for _, d in _examples()} == {r.KIND for r in RESOURCES}
