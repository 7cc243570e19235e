"""A small async Kubernetes API client for the operator's own writes (status, Secrets, policies).

kopf watches and posts Events with its own client; the operator writes status, the signing-key
Secret, the public-key ConfigMaps and NetworkPolicies itself, with the very credentials kopf
logged in with (``kopf.ConnectionInfo``), so there is one source of credentials. Credentials are
read from a source on every request, and a 401 asks for fresh ones once (as kopf's own client
re-authenticates), so short-lived service-account tokens keep working after rotation. Only JSON
merge patches are used: they are what every API server (and the test emulator) applies the same
way.

At most ``API_CONCURRENCY`` requests are in flight, over as many kept-alive connections: a
thousand MCPServers syncing at once otherwise opened a TLS connection each, and httpx's pool,
which scans every connection for every queued request, spent most of the event loop's time
doing that (measured with py-spy at 1,000 servers).
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import kopf
import orjson

from remit_operator.errors import KubeError, NotFoundError

MERGE_PATCH = "application/merge-patch+json"
CONFLICT = 409
Credentials = Callable[[], kopf.ConnectionInfo | None]
API_CONCURRENCY = 32


def object_path(
    api_version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """The REST path of a collection or object: ``/api/v1/namespaces/ns/configmaps/name``."""
    root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    parts = [root]
    if namespace is not None:
        parts.append(f"namespaces/{namespace}")
    parts.append(plural)
    if name is not None:
        parts.append(name)
    if subresource is not None:
        parts.append(subresource)
    return "/".join(parts)


def _ssl_context(info: kopf.ConnectionInfo, scratch: Path) -> ssl.SSLContext | bool:
    if info.insecure:
        return False
    context = ssl.create_default_context(
        cafile=info.ca_path,
        cadata=base64.b64decode(info.ca_data).decode() if info.ca_data else None,
    )
    cert, key = info.certificate_path, info.private_key_path
    if info.certificate_data and info.private_key_data:
        cert, key = str(scratch / "client.crt"), str(scratch / "client.key")
        Path(cert).write_bytes(base64.b64decode(info.certificate_data))
        Path(key).write_bytes(base64.b64decode(info.private_key_data))
    if cert:
        context.load_cert_chain(cert, key)
    return context


class KubeClient:
    """JSON requests to the API server described by a ``kopf.ConnectionInfo``.

    ``credentials`` is the connection, or a function returning the current one (the latest
    login); ``refresh`` logs in afresh and is called once when the server answers 401.
    """

    def __init__(
        self,
        credentials: kopf.ConnectionInfo | Credentials,
        *,
        refresh: Callable[[], object] | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._scratch = tempfile.TemporaryDirectory(prefix="remit-kube-")
        if isinstance(credentials, kopf.ConnectionInfo):
            fixed = credentials
            self._source: Credentials = lambda: fixed
        else:
            self._source = credentials
        self._refresh = refresh
        self._timeout = timeout
        self._info: kopf.ConnectionInfo | None = None
        self._http: httpx.AsyncClient | None = None
        self._retired: list[httpx.AsyncClient] = []
        self._slots = asyncio.Semaphore(API_CONCURRENCY)

    def _client(self) -> httpx.AsyncClient:
        """The HTTP client for the current credentials (rebuilt when they change)."""
        info = self._source()
        if info is None:
            raise KubeError(0, "no Kubernetes credentials yet (kopf has not logged in)")
        if self._http is not None and info is self._info:
            return self._http
        if self._http is not None:
            self._retired.append(self._http)  # requests in flight finish on it
        headers = {"Accept": "application/json"}
        if info.token:
            headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
        auth = (info.username, info.password or "") if info.username else None
        verify = (
            _ssl_context(info, Path(self._scratch.name))
            if info.server.startswith("https")
            else True
        )
        self._info = info
        self._http = httpx.AsyncClient(
            base_url=info.server.rstrip("/"),
            headers=headers,
            auth=auth,
            verify=verify,
            timeout=self._timeout,
            limits=httpx.Limits(
                max_connections=API_CONCURRENCY, max_keepalive_connections=API_CONCURRENCY
            ),
        )
        return self._http

    async def close(self) -> None:
        """Close connections and remove scratch files."""
        for http in [*self._retired, *([self._http] if self._http else [])]:
            await http.aclose()
        self._retired.clear()
        self._http = None
        self._scratch.cleanup()

    async def request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, *, patch: bool = False
    ) -> dict[str, Any]:
        """Send one request; return the JSON answer or raise ``KubeError``/``NotFoundError``."""
        headers = {"Content-Type": MERGE_PATCH if patch else "application/json"}
        content = orjson.dumps(body) if body is not None else None
        for attempt in (1, 2):
            http = self._client()
            try:
                async with self._slots:
                    response = await http.request(method, path, content=content, headers=headers)
            except httpx.HTTPError as exc:
                raise KubeError(0, f"{method} {path}: {exc!r}") from exc
            if response.status_code != 401 or self._refresh is None or attempt == 2:
                break
            await asyncio.to_thread(self._refresh)  # the token expired or rotated: log in again
        if response.status_code == 404:
            raise NotFoundError(404, f"{method} {path}: not found")
        if response.status_code >= 400:
            raise KubeError(response.status_code, f"{method} {path}: {response.text[:300]}")
        try:
            data = orjson.loads(response.content) if response.content else {}
        except orjson.JSONDecodeError as exc:
            raise KubeError(response.status_code, f"{method} {path}: not JSON") from exc
        return data if isinstance(data, dict) else {}

    async def get(self, path: str) -> dict[str, Any]:
        """GET one object."""
        return await self.request("GET", path)

    async def list(self, path: str) -> list[dict[str, Any]]:
        """GET a collection's items."""
        items = (await self.request("GET", path)).get("items") or []
        return [item for item in items if isinstance(item, dict)]

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST a new object into a collection."""
        return await self.request("POST", path, body)

    async def patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Merge-patch an object (``None`` values delete keys)."""
        return await self.request("PATCH", path, body, patch=True)

    async def ensure(
        self, collection: str, body: Mapping[str, Any], fields: tuple[str, ...] = ("data", "spec")
    ) -> bool:
        """Create the object, or patch ``fields``, labels and owners that differ; True if written.

        ``collection`` is the collection path; the name comes from ``body.metadata.name``.
        """
        name = body["metadata"]["name"]
        try:
            current = await self.get(f"{collection}/{name}")
        except NotFoundError:
            try:
                await self.create(collection, body)
                return True
            except KubeError as exc:
                if exc.status != CONFLICT:
                    raise
            # Another writer (a second replica, a concurrent sync) created it between our GET
            # and POST (409 AlreadyExists): read what it wrote and patch what still differs.
            current = await self.get(f"{collection}/{name}")
        wanted_meta = {
            k: body["metadata"][k] for k in ("labels", "ownerReferences") if k in body["metadata"]
        }
        current_meta = current.get("metadata") or {}
        if all(current.get(f) == body.get(f) for f in fields) and all(
            current_meta.get(k) == v for k, v in wanted_meta.items()
        ):
            return False
        update: dict[str, Any] = {}
        for f in fields:
            want, have = body.get(f), current.get(f)
            if isinstance(want, dict) and isinstance(have, dict):  # merge patch: drop stale keys
                want = {**{k: None for k in have if k not in want}, **want}
            update[f] = want
        if wanted_meta:
            update["metadata"] = wanted_meta
        await self.patch(f"{collection}/{name}", update)
        return True
