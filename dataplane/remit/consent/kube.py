"""ConsentGrants through the Kubernetes API, with the consent service's own ServiceAccount.

The chart gives that ServiceAccount only what this module uses: create, patch, get and list
ConsentGrants, and get and list MCPServers and AgentPolicies (for the pages and the access
review). Because the API server knows it is the consent service, the admission policy that
makes everyone else's ``grantedBy`` equal their own user name lets it write the human's.

Every way the API server can fail to answer is a ``GrantStoreError`` naming the grant: an error
status (``ApiException``), and an API server that cannot be reached at all (urllib3's
``MaxRetryError`` and its other errors, an ``OSError`` from the socket or TLS), so the page
answers 503 rather than a 500 with a stack trace. A grant that exists already is a
``GrantExistsError`` (HTTP 409 from the API server).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from remit.api.agentpolicy import AgentPolicy
from remit.api.common import GROUP, VERSION, Resource
from remit.api.consentgrant import ConsentGrant
from remit.api.loader import parse
from remit.api.mcpserver import MCPServer
from remit.consent.grants import document
from remit.consent.store import revocation_patch
from remit.errors import GrantExistsError, GrantStoreError, RemitError

REASON_CHARS = 300  # of an error's text, in the page's and the log's message


class KubeStore:
    """Grants in the cluster. ``api`` is a ``kubernetes.client.ApiClient`` (tests pass one for
    their API server); by default the in-cluster configuration, else the kubeconfig."""

    def __init__(self, api: Any = None) -> None:
        from kubernetes import client, config  # noqa: PLC0415 - only the cluster store needs it
        from urllib3.exceptions import HTTPError  # noqa: PLC0415 - kubernetes' transport

        if api is None:
            try:
                config.load_incluster_config()  # type: ignore[no-untyped-call]
            except config.ConfigException:
                config.load_kube_config()  # type: ignore[no-untyped-call]
            api = client.ApiClient()
        self._objects = client.CustomObjectsApi(api)
        self._exception = client.ApiException
        # An error status, or no answer at all (refused, timed out, TLS, a broken response).
        self._failures: tuple[type[BaseException], ...] = (client.ApiException, HTTPError, OSError)

    def _why(self, exc: BaseException) -> str:
        if isinstance(exc, self._exception):
            text = str(exc.reason)
        else:  # MaxRetryError's reason is what failed (e.g. the connection, refused)
            text = f"{type(exc).__name__}: {getattr(exc, 'reason', None) or exc}"
        return text if len(text) <= REASON_CHARS else text[:REASON_CHARS] + "…"

    def create(self, grant: ConsentGrant) -> None:
        try:
            self._objects.create_namespaced_custom_object(
                GROUP,
                VERSION,
                grant.metadata.namespace,
                ConsentGrant.PLURAL,
                document(grant),
            )
        except self._failures as exc:
            if isinstance(exc, self._exception) and exc.status == 409:
                raise GrantExistsError(f"grant {grant.ref} already exists") from exc
            raise GrantStoreError(f"cannot create grant {grant.ref}: {self._why(exc)}") from exc

    def exists(self, grant: ConsentGrant) -> bool:
        try:
            self._objects.get_namespaced_custom_object(
                GROUP, VERSION, grant.metadata.namespace, ConsentGrant.PLURAL, grant.metadata.name
            )
        except self._failures as exc:
            if isinstance(exc, self._exception) and exc.status == 404:
                return False
            raise GrantStoreError(f"cannot read grant {grant.ref}: {self._why(exc)}") from exc
        return True

    def _list(self, plural: str) -> list[dict[str, Any]]:
        try:
            listed: Any = self._objects.list_cluster_custom_object(GROUP, VERSION, plural)
        except self._failures as exc:
            raise GrantStoreError(f"cannot list {plural}: {self._why(exc)}") from exc
        items: list[dict[str, Any]] = listed.get("items", [])
        return items

    def grants(self) -> list[ConsentGrant]:
        return [g for g in self._parsed(ConsentGrant.PLURAL) if isinstance(g, ConsentGrant)]

    def _parsed(self, plural: str) -> list[Resource]:
        found: list[Resource] = []
        for item in self._list(plural):
            try:
                found.append(parse(item))
            except RemitError:
                continue  # an object the API server took but our model refuses: not ours to show
        return found

    def resources(self) -> list[Resource]:
        found: list[Resource] = []
        for kind in (MCPServer, AgentPolicy, ConsentGrant):
            found.extend(self._parsed(kind.PLURAL))
        return found

    def revoke(self, namespace: str, name: str, by: str, now: datetime) -> ConsentGrant:
        try:
            before: Any = self._objects.get_namespaced_custom_object(
                GROUP, VERSION, namespace, ConsentGrant.PLURAL, name
            )
            grant = parse(before)
            patch = revocation_patch(by, now)
            if not isinstance(grant, ConsentGrant):
                raise GrantStoreError(f"{namespace}/{name} is not a ConsentGrant")
            if grant.spec.evidence is None:
                patch = {"spec": {"revoked": True}}
            self._objects.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, ConsentGrant.PLURAL, name, patch
            )
        except self._failures as exc:
            raise GrantStoreError(f"cannot revoke {namespace}/{name}: {self._why(exc)}") from exc
        return grant


__all__ = ["KubeStore"]
