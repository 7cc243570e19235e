"""Read custom resources from YAML files or Kubernetes objects into validated models.

Every problem becomes a ``ResourceError`` that names the resource, the field and the reason
(``agents/support-bot: spec.rules[1].when: invalid CEL at column 9: ...``); loading a
directory collects all of them instead of stopping at the first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from remit.api.agentpolicy import AgentPolicy
from remit.api.common import API_VERSION, GROUP, Resource
from remit.api.consentgrant import ConsentGrant
from remit.api.lint import Finding
from remit.api.mcpserver import MCPServer
from remit.errors import LoadError, ResourceError

KINDS: Mapping[str, type[Resource]] = {
    "MCPServer": MCPServer,
    "AgentPolicy": AgentPolicy,
    "ConsentGrant": ConsentGrant,
}


@dataclass
class Loaded:
    """What a directory held: valid resources, errors, and documents that are not Remit's."""

    resources: list[Resource] = field(default_factory=list)
    errors: list[ResourceError | LoadError] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    # Where each resource was read: (kind, namespace/name) -> "file#document".
    sources: dict[tuple[str, str], str] = field(default_factory=dict)
    # Valid but suspicious: a resource without a namespace, a directory with no resources.
    warnings: list[Finding] = field(default_factory=list)

    def of(self, kind: type[Resource]) -> list[Any]:
        """The valid resources of one kind."""
        return [r for r in self.resources if isinstance(r, kind)]


def field_path(loc: Iterable[int | str]) -> str:
    """Turn a pydantic error location into ``spec.rules[1].when``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _resource_name(document: Mapping[str, Any], source: str) -> str:
    metadata = document.get("metadata")
    if isinstance(metadata, Mapping) and metadata.get("name"):
        namespace = metadata.get("namespace") or "default"
        return f"{namespace}/{metadata['name']}"
    return source


def parse(document: Mapping[str, Any], source: str = "<input>") -> Resource:
    """Validate one Kubernetes object as a Remit resource, or raise ``ResourceError``."""
    name = _resource_name(document, source)
    kind = document.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ResourceError(name, "kind", f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
    if document.get("apiVersion") != API_VERSION:
        raise ResourceError(
            name, "apiVersion", f"expected {API_VERSION!r}, got {document.get('apiVersion')!r}"
        )
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        where = field_path(first["loc"])
        # Errors raised by a model-level validator carry their own relative path prefix.
        if message.startswith("rules[") and where == "spec":
            sub, _, message = message.partition(": ")
            where = f"spec.{sub}"
        raise ResourceError(name, where, message) from exc


def _documents(path: Path) -> Iterable[tuple[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
        for index, document in enumerate(yaml.safe_load_all(text)):
            yield f"{path}#{index}", document
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadError(f"{path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise LoadError(f"{path}: invalid YAML: {exc}") from exc


def _no_namespace(document: Mapping[str, Any], resource: Resource, source: str) -> Finding | None:
    metadata = document.get("metadata")
    if isinstance(metadata, Mapping) and metadata.get("namespace"):
        return None
    return Finding(
        resource.KIND,
        resource.ref,
        "metadata.namespace",
        "no namespace: read as 'default' here, while kubectl apply puts it in the current "
        "context's namespace; name it",
        "NoNamespace",
        source,
    )


def _empty(root: Path, recursive: bool) -> Finding:
    nested = (
        root.is_dir()
        and not recursive
        and any(p.suffix in (".yaml", ".yml") for p in root.rglob("*") if p.parent != root)
    )
    hint = " (its subdirectories hold YAML files: add -R to read them)" if nested else ""
    return Finding("", str(root), "-f", f"no Remit resources found{hint}", "NoResources", "")


def _files(root: Path, recursive: bool) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise LoadError(f"{root}: no such file or directory")
    found = root.rglob("*") if recursive else root.glob("*")
    return sorted(p for p in found if p.suffix in (".yaml", ".yml") and p.is_file())


def load(paths: Iterable[Path | str], *, recursive: bool = False) -> Loaded:
    """Load every Remit resource in ``paths`` (files, or the YAML files of directories).

    Like ``kubectl apply -f``, a directory's subdirectories are read only when ``recursive``.

    Documents of other API groups (kustomizations, Deployments) are skipped and listed.
    Duplicate (kind, namespace, name) pairs are errors: the last one would silently win.
    """
    loaded = Loaded()
    seen: dict[tuple[str, str], str] = {}
    for root in paths:
        try:
            files = _files(Path(root), recursive)
        except LoadError as exc:
            loaded.errors.append(exc)
            continue
        before = len(loaded.resources) + len(loaded.errors)
        for file in files:
            try:
                documents = list(_documents(file))
            except LoadError as exc:
                loaded.errors.append(exc)
                continue
            for source, document in documents:
                if document is None:
                    continue
                if not isinstance(document, Mapping):
                    loaded.errors.append(LoadError(f"{source}: expected a mapping"))
                    continue
                group = str(document.get("apiVersion", "")).split("/")[0]
                if group != GROUP:
                    loaded.skipped.append(f"{source} ({document.get('kind', '?')})")
                    continue
                try:
                    resource = parse(document, source)
                except ResourceError as exc:
                    kind = document.get("kind", "?")
                    named = f"{source}: {kind} {_resource_name(document, source)}"
                    if named.endswith(f" {source}"):
                        named = f"{source}: {kind}"
                    loaded.errors.append(ResourceError(named, exc.field, exc.reason))
                    continue
                key = (resource.KIND, resource.ref)
                if key in seen:
                    loaded.errors.append(
                        ResourceError(
                            f"{source}: {resource.KIND} {resource.ref}",
                            "metadata.name",
                            f"duplicate {resource.KIND} (first in {seen[key]})",
                        )
                    )
                    continue
                seen[key] = source
                loaded.sources[key] = source
                loaded.resources.append(resource)
                missing = _no_namespace(document, resource, source)
                if missing is not None:
                    loaded.warnings.append(missing)
        if len(loaded.resources) + len(loaded.errors) == before:
            loaded.warnings.append(_empty(Path(root), recursive))
    return loaded
