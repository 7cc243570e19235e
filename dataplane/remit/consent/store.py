"""Where the consent service keeps ConsentGrants: a policy directory (standalone) or, in
``kube.py``, the Kubernetes API.

``DirectoryStore`` writes each approval as its own file ``consent-<request>.yaml`` in the
directory the standalone gateway reloads (``remit.gateway.reload``), atomically (a temporary
file, then a rename) so the gateway never reads half a grant. Creating a grant that exists
fails (``GrantExistsError``: one grant per request). Revoking sets ``spec.revoked: true`` and
records who revoked and when in ``spec.evidence``: the grant stays as evidence.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import yaml

from remit.api.agentpolicy import AgentPolicy
from remit.api.common import Resource
from remit.api.consentgrant import ConsentGrant
from remit.api.loader import load
from remit.api.mcpserver import MCPServer
from remit.consent.grants import document
from remit.errors import GrantExistsError, GrantStoreError
from remit.times import utc_text


class GrantStore(Protocol):
    """What the consent pages need from wherever grants live."""

    def create(self, grant: ConsentGrant) -> None:
        """Create ``grant``; ``GrantExistsError`` if it exists, ``GrantStoreError`` if it cannot
        be written."""

    def exists(self, grant: ConsentGrant) -> bool:
        """Whether a grant of ``grant``'s namespace and name exists (``GrantStoreError`` if
        that cannot be known)."""

    def grants(self) -> list[ConsentGrant]:
        """Every ConsentGrant (the pages filter by subject)."""

    def revoke(self, namespace: str, name: str, by: str, now: datetime) -> ConsentGrant:
        """Mark the grant revoked, keeping it; returns it as it was before."""

    def resources(self) -> list[Resource]:
        """MCPServers, AgentPolicies and ConsentGrants, for the access review."""


def revocation_patch(by: str, now: datetime) -> dict[str, Any]:
    """The merge patch that revokes a grant and says who did, when."""
    return {"spec": {"revoked": True, "evidence": {"revokedAt": utc_text(now), "revokedBy": by}}}


class DirectoryStore:
    """Grants as YAML files in a policy directory."""

    def __init__(self, directory: Path) -> None:
        if not directory.is_dir():
            raise GrantStoreError(f"{directory}: not a directory")
        self.directory = directory
        self._lock = threading.Lock()

    def _path(self, name: str) -> Path:
        return self.directory / f"{name}.yaml"

    def create(self, grant: ConsentGrant) -> None:
        with self._lock:
            if self._exists(grant):
                raise GrantExistsError(f"grant {grant.ref} already exists")
            self._write(self._path(grant.metadata.name), [document(grant)])

    def exists(self, grant: ConsentGrant) -> bool:
        with self._lock:
            return self._exists(grant)

    def _exists(self, grant: ConsentGrant) -> bool:
        return self._path(grant.metadata.name).exists() or any(
            g.metadata.name == grant.metadata.name
            and g.metadata.namespace == grant.metadata.namespace
            for g in self.grants()
        )

    def _write(self, path: Path, documents: Iterable[dict[str, Any]]) -> None:
        text = yaml.safe_dump_all(list(documents), sort_keys=False)
        try:
            fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                stream.write(text)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, path)
        except OSError as exc:
            raise GrantStoreError(f"cannot write {path}: {exc.strerror}") from exc

    def resources(self) -> list[Resource]:
        loaded = load([self.directory])
        return [
            r for r in loaded.resources if isinstance(r, MCPServer | AgentPolicy | ConsentGrant)
        ]

    def grants(self) -> list[ConsentGrant]:
        return [r for r in self.resources() if isinstance(r, ConsentGrant)]

    def revoke(self, namespace: str, name: str, by: str, now: datetime) -> ConsentGrant:
        patch = revocation_patch(by, now)["spec"]
        with self._lock:
            for path in sorted(self.directory.glob("*.y*ml")):
                try:
                    documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
                except (OSError, yaml.YAMLError):
                    continue
                for doc in documents:
                    if _is_grant(doc, namespace, name):
                        before = ConsentGrant.model_validate(doc)
                        spec = doc.setdefault("spec", {})
                        spec["revoked"] = True
                        if isinstance(spec.get("evidence"), dict):
                            spec["evidence"].update(patch["evidence"])
                        self._write(path, documents)
                        return before
        raise GrantStoreError(f"no grant {namespace}/{name}")


def _is_grant(doc: Any, namespace: str, name: str) -> bool:
    if not isinstance(doc, dict) or doc.get("kind") != "ConsentGrant":
        return False
    meta = doc.get("metadata") or {}
    return bool(meta.get("name") == name and meta.get("namespace", "default") == namespace)


__all__ = ["DirectoryStore", "GrantStore", "revocation_patch"]
