"""Turn the resource models into the CustomResourceDefinitions shipped in ``crds/``.

The models are the one source of truth; the API server needs a *structural* OpenAPI v3 schema
(no ``$ref``, no ``anyOf``, every node typed), so this module rewrites pydantic's JSON schema
into one. Optional fields (``X | None = None``) become plain, non-required ``X``: the API server
prunes nulls from non-nullable fields and the models read an absent field as ``None``.
Rules the Python validators enforce become ``x-kubernetes-validations`` (Kubernetes CEL) so
``kubectl apply`` rejects what the operator would reject; the ``when`` conditions themselves
stay in Python (``remit.api.validators``). Output is deterministic: same models, same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, NoDefault
from pydantic_core import core_schema

from remit.api.agentpolicy import ANNOTATION_HINTS, AgentPolicy, AgentPolicySpec, Rule, Subjects
from remit.api.common import API_VERSION, GROUP, VERSION, Resource
from remit.api.consentgrant import ConsentGrant, ConsentGrantSpec
from remit.api.mcpserver import GatewayPorts, LabelSelector, MCPServer

RESOURCES: Final[tuple[type[Resource], ...]] = (MCPServer, AgentPolicy, ConsentGrant)
CATEGORY: Final = "remit"
HEADER: Final = "# Generated from the remit.api models by `make crds`; do not edit.\n"

# Keywords copied as they are; anything else pydantic emits is an error, never passed through.
_PLAIN: Final = (
    *("format", "enum", "pattern", "minLength", "maxLength", "minimum", "maximum"),
    *("minItems", "maxItems", "minProperties", "maxProperties"),
)
_IGNORED = frozenset({"title", "$defs"})
_SHAPE = frozenset({"type", "description", "default", "items", "properties", "required"})
_EMPTY: Final[tuple[Any, ...]] = (None, "", [], {})
_ORDER: Final = (
    *("type", "description", *_PLAIN, "default"),
    *("properties", "required", "items", "additionalProperties", "x-kubernetes-validations"),
)


def _rule(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    entry = {"rule": rule, "message": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
    return entry


def _some(field: str) -> str:
    return f"(has(self.{field}) && size(self.{field}) > 0)"


_TARGETS = f"[{_some('tools')}, {_some('resources')}, {_some('prompts')}]"
_HINTS = ", ".join(f"'{hint}'" for hint in ANNOTATION_HINTS)

# Kubernetes CEL rules per model: the API-server side of the models' Python validators.
RULES: Final[Mapping[str, tuple[dict[str, str], ...]]] = {
    GatewayPorts.__name__: (
        _rule("self.port != self.adminPort", "port and adminPort must differ"),
    ),
    LabelSelector.__name__: (
        _rule(
            f"{_some('matchLabels')} || {_some('matchExpressions')}",
            "selector must set matchLabels or matchExpressions (an empty selector would select "
            "every pod in the namespace)",
        ),
    ),
    Subjects.__name__: (
        _rule(
            f"{_some('users')} || {_some('groups')}",
            "list users or groups (omit subjects to mean anyone)",
        ),
    ),
    Rule.__name__: (
        _rule(f"{_TARGETS}.exists_one(t, t)", "set exactly one of tools, resources or prompts"),
        _rule(
            f"!has(self.annotations) || size(self.annotations) == 0 || {_some('tools')}",
            "annotations only apply to tools",
            ".annotations",
        ),
        _rule(
            f"!has(self.annotations) || self.annotations.all(k, k in [{_HINTS}])",
            f"unknown annotation (known: {', '.join(ANNOTATION_HINTS)})",
            ".annotations",
        ),
        _rule(
            "self.effect == 'Allow' || !has(self.requireConsent) || !self.requireConsent",
            "requireConsent only applies to Allow rules",
            ".requireConsent",
        ),
        _rule(
            "self.effect == 'Allow' || !has(self.rateLimit)",
            "rateLimit only applies to Allow rules",
            ".rateLimit",
        ),
    ),
    AgentPolicySpec.__name__: (
        _rule(
            "self.rules.all(r, self.rules.exists_one(s, s.name == r.name))",
            "rule names must be unique within the policy",
            ".rules",
        ),
    ),
    ConsentGrantSpec.__name__: (
        _rule(
            f"{_some('tools')} || {_some('resources')} || {_some('prompts')}",
            "grant at least one of tools, resources or prompts",
        ),
    ),
}

# Schema keywords only the CRD carries. maxItems on rules bounds the estimated cost of the
# O(n^2) uniqueness rule (the API server refuses a CRD whose rules could exceed its budget);
# maxProperties on annotations is implied by the known hints; the expiresAt pattern is the
# models' "needs a time zone" check.
EXTRA_KEYWORDS: Final[Mapping[tuple[str, str], Mapping[str, Any]]] = {
    (AgentPolicySpec.__name__, "rules"): {"maxItems": 256},
    (Rule.__name__, "annotations"): {"maxProperties": len(ANNOTATION_HINTS)},
    (ConsentGrantSpec.__name__, "expiresAt"): {"pattern": "(Z|z|[+-][0-9]{2}:[0-9]{2})$"},
}

_CONDITION = '.status.conditions[?(@.type=="{}")].status'
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def _column(name: str, path: str, kind: str = "string", priority: int = 0) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": kind, "jsonPath": path}
    if priority:
        column["priority"] = priority
    return column


COLUMNS: Final[Mapping[str, tuple[dict[str, Any], ...]]] = {
    MCPServer.KIND: (
        _column("Ready", _CONDITION.format("Ready")),
        _column("Digest", ".status.bundleDigest", priority=1),
        _column("In-Sync", ".status.sidecarsInSync", "integer"),
        _column("Desired", ".status.sidecarsDesired", "integer"),
        _AGE,
    ),
    AgentPolicy.KIND: (
        _column("Accepted", _CONDITION.format("Accepted")),
        _column("Agents", ".spec.agents"),
        _column("Servers", ".spec.servers", priority=1),
        _AGE,
    ),
    ConsentGrant.KIND: (
        _column("Phase", ".status.phase"),
        _column("Subject", ".spec.subject"),
        _column("Agent", ".spec.agent"),
        _column("Server", ".spec.server"),
        # A string, not a date: kubectl renders future dates as "<invalid>".
        _column("Expires", ".spec.expiresAt"),
        _AGE,
    ),
}


class _WithFactoryDefaults(GenerateJsonSchema):
    """Also report defaults made by ``default_factory`` (``upstream``, ``gateway``, ``audit``)."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            return factory()  # type: ignore[call-arg]
        return schema.get("default", NoDefault)


def _meaningful(value: Any) -> Any:
    """``value`` without ``None`` or empty parts: absent already means that, and stays unstored."""
    if isinstance(value, dict):
        kept = {k: _meaningful(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in _EMPTY}
    return value


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    return {key: node[key] for key in _ORDER if key in node}


def _docs(text: str) -> str:
    return " ".join(text.replace("``", "`").split())


class _Converter:
    """Rewrites pydantic JSON schemas into structural ones, noting which table entries it used."""

    def __init__(self) -> None:
        self.defs: Mapping[str, Any] = {}
        self.used: set[str] = set()

    def part(self, model: type[BaseModel]) -> dict[str, Any]:
        raw = model.model_json_schema(by_alias=True, schema_generator=_WithFactoryDefaults)
        self.defs = raw.get("$defs", {})
        return self.node(raw, model.__name__, owner=model.__name__)

    def node(self, raw: Mapping[str, Any], where: str, owner: str | None = None) -> dict[str, Any]:
        raw = dict(raw)
        if "$ref" in raw:
            name = raw.pop("$ref").removeprefix("#/$defs/")
            out = self.node(self.defs[name], where, owner=name)
        elif "anyOf" in raw:
            branches = [b for b in raw.pop("anyOf") if b != {"type": "null"}]
            if len(branches) != 1:
                raise ValueError(f"{where}: only `X | None` unions are supported in a CRD")
            out = self.node(branches[0], where)
        else:
            if "const" in raw:
                raw["enum"] = [raw.pop("const")]
            out = self._typed(raw, where, owner)
            raw = {k: v for k, v in raw.items() if k in ("description", "default")}
        if "description" in raw:
            out["description"] = _docs(raw.pop("description"))
        default = _meaningful(raw.pop("default", None))
        if default not in _EMPTY:
            out["default"] = default
        if set(raw) - _IGNORED:
            raise ValueError(f"{where}: unsupported schema keywords {sorted(set(raw) - _IGNORED)}")
        return _ordered(out)

    def _typed(self, raw: dict[str, Any], where: str, owner: str | None) -> dict[str, Any]:
        kind = raw.get("type")
        if kind not in ("object", "array", "string", "integer", "number", "boolean"):
            raise ValueError(f"{where}: cannot express type {kind!r} in a structural schema")
        unknown = set(raw) - _IGNORED - _SHAPE - {*_PLAIN, "additionalProperties"}
        if unknown or raw.get("additionalProperties") is True:
            raise ValueError(f"{where}: unsupported schema keywords {sorted(unknown)}")
        out: dict[str, Any] = {"type": kind, **{k: raw[k] for k in _PLAIN if k in raw}}
        if kind == "array":
            out["items"] = self.node(raw["items"], f"{where}[]")
        if isinstance(raw.get("additionalProperties"), dict):
            out["additionalProperties"] = self.node(raw["additionalProperties"], f"{where}.*")
        if "properties" in raw:
            out["properties"] = {
                key: self._property(owner, key, value, f"{where}.{key}")
                for key, value in raw["properties"].items()
            }
            if raw.get("required"):
                out["required"] = list(raw["required"])
        if owner is not None and owner in RULES:
            self.used.add(owner)
            out["x-kubernetes-validations"] = [dict(rule) for rule in RULES[owner]]
        return out

    def _property(self, owner: str | None, key: str, raw: Any, where: str) -> dict[str, Any]:
        out = self.node(raw, where)
        extra = EXTRA_KEYWORDS.get((owner or "", key))
        if extra is not None:
            self.used.add(f"{owner}.{key}")
            out.update(extra)
        return _ordered(out)


def _field_model(resource: type[Resource], name: str) -> type[BaseModel]:
    annotation = resource.model_fields[name].annotation
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    raise ValueError(f"{resource.__name__}.{name} is not a model")


def openapi_schema(resource: type[Resource], converter: _Converter | None = None) -> dict[str, Any]:
    """The structural ``openAPIV3Schema`` of one kind; ``metadata`` is left to Kubernetes."""
    converter = converter or _Converter()
    return {
        "type": "object",
        "description": _docs(resource.__doc__ or resource.KIND),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": f"Always {API_VERSION}."},
            "kind": {"type": "string", "description": f"Always {resource.KIND}."},
            "metadata": {"type": "object"},
            "spec": converter.part(_field_model(resource, "spec")),
            "status": converter.part(_field_model(resource, "status")),
        },
    }


def crd(resource: type[Resource], converter: _Converter | None = None) -> dict[str, Any]:
    """The CustomResourceDefinition of one Remit kind, as a Kubernetes object."""
    singular = resource.KIND.lower()
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{resource.PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "remit"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": resource.KIND,
                "listKind": f"{resource.KIND}List",
                "plural": resource.PLURAL,
                "singular": singular,
                "shortNames": list(resource.SHORT_NAMES),
                "categories": [CATEGORY],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(c) for c in COLUMNS[resource.KIND]],
                    "schema": {"openAPIV3Schema": openapi_schema(resource, converter)},
                }
            ],
        },
    }


def crds() -> list[dict[str, Any]]:
    """Every Remit CRD, in a fixed order; fails if a rule or keyword table names no model."""
    converter = _Converter()
    objects = [crd(resource, converter) for resource in RESOURCES]
    expected = set(RULES) | {f"{owner}.{key}" for owner, key in EXTRA_KEYWORDS}
    if expected - converter.used:
        raise ValueError(f"CRD tables name no model field: {sorted(expected - converter.used)}")
    return objects


def file_name(definition: Mapping[str, Any]) -> str:
    """``remit.dev_<plural>.yaml``, the name kubebuilder-style tooling uses."""
    return f"{GROUP}_{definition['spec']['names']['plural']}.yaml"


def render(definition: Mapping[str, Any]) -> str:
    """One CRD as YAML text, byte-for-byte stable for the same input."""
    body = yaml.safe_dump(dict(definition), sort_keys=False, allow_unicode=True, width=1_000_000)
    return HEADER + body


def rendered() -> dict[str, str]:
    """File name to YAML text for every CRD: what ``remit crds generate`` writes."""
    return {file_name(definition): render(definition) for definition in crds()}
