"""A small stand-in for what the API server does with a custom resource, so tests can "apply".

Order as in Kubernetes: apply schema defaults, report unknown fields (kubectl's default
``--validate=strict``), validate against the OpenAPI schema, then evaluate each
``x-kubernetes-validations`` rule with ``self`` bound to its node. CEL here is the ``cel``
module, which lacks some Kubernetes extensions; the rules Remit writes use none of them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import datetime
from functools import cache
from typing import Any

import cel
import jsonschema

from remit.api.crdgen import crds

FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if isinstance(value, str):
        datetime.fromisoformat(value)
    return True


@cache
def _schemas() -> dict[str, dict[str, Any]]:
    return {
        d["spec"]["names"]["kind"]: d["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for d in crds()
    }


def schema_of(kind: str) -> dict[str, Any]:
    """The generated ``openAPIV3Schema`` of one kind (a fresh copy)."""
    return copy.deepcopy(_schemas()[kind])


def to_json_schema(node: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI v3 (Kubernetes flavour) to JSON Schema: ``nullable`` widens the type."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = to_json_schema(value)
        else:
            out[key] = value
    if node.get("nullable"):
        out["type"] = [out["type"], "null"]
    return out


def schema_errors(schema: dict[str, Any], value: Any) -> list[str]:
    """OpenAPI validation errors as ``path: message``."""
    validator = jsonschema.Draft202012Validator(to_json_schema(schema), format_checker=FORMATS)
    return [
        "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        + f": {error.message}"
        for error in sorted(validator.iter_errors(value), key=lambda e: str(e.absolute_path))
    ]


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """``value`` with the schema's defaults filled in, top-down, as the API server does."""
    value = copy.deepcopy(value)
    if isinstance(value, dict) and "properties" in schema:
        for key, sub in schema["properties"].items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = apply_defaults(sub, value[key])
    elif isinstance(value, list) and "items" in schema:
        value = [apply_defaults(schema["items"], item) for item in value]
    return value


def _children(schema: dict[str, Any], value: Any, path: str) -> Iterator[tuple[Any, Any, str]]:
    if isinstance(value, dict) and "properties" in schema:
        for key, item in value.items():
            if key in schema["properties"]:
                yield schema["properties"][key], item, f"{path}.{key}"
    elif isinstance(value, dict) and "additionalProperties" in schema:
        for key, item in value.items():
            yield schema["additionalProperties"], item, f"{path}[{key}]"
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield schema["items"], item, f"{path}[{index}]"


def unknown_fields(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """Fields the schema does not declare: pruned by the server, refused by strict kubectl."""
    found = []
    if isinstance(value, dict) and "properties" in schema:
        found += [f'{path}: unknown field "{k}"' for k in value if k not in schema["properties"]]
    for sub, item, where in _children(schema, value, path):
        found += unknown_fields(sub, item, where)
    return found


def rule_failures(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """Messages of the ``x-kubernetes-validations`` rules that do not hold, at every node."""
    failures = []
    for rule in schema.get("x-kubernetes-validations", []):
        message = rule["message"]
        try:
            holds = cel.evaluate(rule["rule"], {"self": value})
        except (ValueError, RuntimeError, KeyError, TypeError) as exc:
            holds, message = False, f"{message} (error: {exc})"
        if holds is not True:
            failures.append(f"{path}{rule.get('fieldPath', '')}: {message}")
    for sub, item, where in _children(schema, value, path):
        failures += rule_failures(sub, item, where)
    return failures


def admit(document: dict[str, Any]) -> list[str]:
    """Every reason the API server (with strict kubectl) would refuse ``document``; [] admits."""
    schema = schema_of(document["kind"])
    value = apply_defaults(schema, document)
    errors = unknown_fields(schema, value) + schema_errors(schema, value)
    if errors:
        return errors
    return rule_failures(schema, value)
