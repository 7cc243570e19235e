"""Pushing signed bundles to gateway sidecars over their admin API, concurrently, with retries.

    PUT /v1/bundle  (compact JWS)  → 200 {"digest", "serial", "changed"} | 409 rollback | 400 bad
                                     | 422 refused ({"reason": "wrong_server" | "stale"})
    PATCH /v1/bundle (signed delta) → the same, | 409 delta_base | 422 delta_digest
    GET /v1/status                 → {"ready", "bundle": {"digest", "serial", ...} | null, "pins",
                                       "bundleDelta": true (only sidecars that take deltas),
                                       "bundleFields": [later bundle fields it knows]}

A sidecar that advertises ``bundleDelta`` (in its status or its answer to a push) is sent a
signed delta against the bundle it holds when there is one (``remit_operator.deltas``); if it
refuses the delta for any reason, the full bundle follows in the same push. A sidecar that does
not advertise it (an older image) only ever gets full bundles.

A push to one sidecar is retried on connection errors, timeouts and 5xx with exponential
backoff, up to ``REMIT_PUSH_RETRIES`` times. A 400 (signature) moves on to the next candidate
key (a rotation in progress) and is not retried with the same one. A 409 reads the sidecar's
serial so the caller can re-sign above it. Any other refusal keeps the sidecar's ``reason``
(``PushResult.refused``) so status and Events can say the sidecar refused the bundle.

Bounds, so that unresponsive pods of one server never delay another server's revocation:

- at most ``REMIT_PUSH_CONCURRENCY`` requests per MCPServer are in flight, and at most
  ``REMIT_PUSH_CONCURRENCY_TOTAL`` overall: a server whose pods hang holds only its own share;
- one push round of a server ends after ``REMIT_PUSH_DEADLINE_SECONDS``: what has not answered
  by then is reported failed and retried by the next round;
- a sidecar that did not answer at all last time (timeout, refused) gets one attempt and no
  retries until it answers again.

The signed bundle arrives here as ``bytes``, encoded once per bundle: every request shares that
one buffer, so memory does not grow with the number of pods.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import httpx
import orjson

from remit_operator.anchors import valid_head
from remit_operator.index import Sidecar
from remit_operator.lastuse import reported_uses
from remit_operator.settings import Settings

Sleep = Callable[[float], Awaitable[None]]
# What a sidecar may report is bounded: anything else is ignored, never trusted.
MAX_DIGEST = 128
MAX_SERIAL = 2**63 - 1
MAX_PINS = 4096
MAX_TOOL_NAME = 256
MAX_FIELDS = 256
MAX_FIELD_NAME = 128


@dataclass(frozen=True, slots=True)
class PushResult:
    """What one sidecar holds after a push or a status read."""

    sidecar: Sidecar
    digest: str | None = None
    serial: int | None = None
    error: str | None = None
    rollback_serial: int | None = None  # set when the sidecar refused a rollback (409)
    pins: dict[str, str] | None = None
    refused: str | None = None  # the sidecar's reason for refusing the bundle (4xx)
    head: str | None = None  # the sidecar's audit chain head (status), for the anchors
    takes_delta: bool = False  # the sidecar advertises PATCH /v1/bundle deltas
    by_delta: bool = False  # this push was installed from a delta
    sent: int = 0  # bytes of the body that was installed (the delta's or the full bundle's)
    grants_used: dict[str, datetime] | None = None  # grant → last allowed call (lastuse.py)
    consent: Any = None  # the sidecar's ``consent`` status (consentpush.py checks it)
    audit_key: Any = None  # the sidecar's ``auditKey`` status (auditkeys.py checks it)
    fields: frozenset[str] | None = None  # later bundle fields it knows (status read only)

    @property
    def ok(self) -> bool:
        """Whether the sidecar answered and holds a bundle."""
        return self.error is None and self.digest is not None


def admin_url(sidecar: Sidecar, admin_port: int, path: str) -> str:
    """``http://<pod IP>:<adminPort><path>``."""
    host = sidecar.admin_host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{admin_port}{path}"


class Pusher:
    """One HTTP client for every sidecar; request limits per server and overall."""

    def __init__(self, settings: Settings, *, sleep: Sleep = asyncio.sleep) -> None:
        self.settings = settings
        self._sleep = sleep
        self._total = asyncio.Semaphore(settings.push.concurrency_total)
        self._per_server: dict[str, asyncio.Semaphore] = {}
        self._silent: dict[str, set[tuple[str, str]]] = {}  # server → (pod, incarnation) silent
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
        self._http = httpx.AsyncClient(timeout=settings.push.timeout_seconds, limits=limits)

    async def close(self) -> None:
        """Close every connection."""
        await self._http.aclose()

    def _server_limit(self, server: str) -> asyncio.Semaphore:
        found = self._per_server.get(server)
        if found is None:
            found = self._per_server[server] = asyncio.Semaphore(self.settings.push.concurrency)
        return found

    def forget(self, server: str) -> None:
        """Drop what is kept about a deleted server."""
        self._per_server.pop(server, None)
        self._silent.pop(server, None)

    def retain(self, server: str, sidecars: Sequence[Sidecar]) -> None:
        """Forget silent sidecars of ``server`` that are gone (bounded by the live pods)."""
        live = {(s.pod, s.incarnation) for s in sidecars}
        silent = self._silent.get(server)
        if silent:
            silent &= live

    def _silence(self, sidecar: Sidecar, silent: bool) -> None:
        key = (sidecar.pod, sidecar.incarnation)
        if silent:
            self._silent.setdefault(sidecar.server, set()).add(key)
        else:
            self._silent.get(sidecar.server, set()).discard(key)

    def is_silent(self, sidecar: Sidecar) -> bool:
        """Whether the sidecar did not answer the last request sent to it."""
        return (sidecar.pod, sidecar.incarnation) in self._silent.get(sidecar.server, set())

    async def _send(
        self, sidecar: Sidecar, method: str, url: str, content: bytes | None
    ) -> httpx.Response:
        async with self._server_limit(sidecar.server), self._total:
            return await self._http.request(method, url, content=content)

    async def _retrying(
        self, sidecar: Sidecar, method: str, url: str, content: bytes | None = None
    ) -> httpx.Response:
        """Send; retry transport errors and 5xx with exponential backoff; return the last answer."""
        retries = 0 if self.is_silent(sidecar) else self.settings.push.retries
        delay = self.settings.push.backoff_seconds
        attempt = 0
        while True:
            try:
                response = await self._send(sidecar, method, url, content)
                self._silence(sidecar, False)
                if response.status_code < 500 or attempt >= retries:
                    return response
            except httpx.HTTPError:
                if attempt >= retries:
                    self._silence(sidecar, True)
                    raise
            attempt += 1
            await self._sleep(delay)
            delay *= 2

    async def status(self, sidecar: Sidecar, admin_port: int) -> PushResult:
        """Read what the sidecar holds (``GET /v1/status``)."""
        url = admin_url(sidecar, admin_port, "/v1/status")
        try:
            response = await self._retrying(sidecar, "GET", url)
            data = _json(response)
        except (httpx.HTTPError, ValueError) as exc:
            return PushResult(sidecar, error=f"status: {_describe(exc)}")
        if response.status_code != 200:
            return PushResult(sidecar, error=f"status: HTTP {response.status_code}")
        bundle = data.get("bundle") or {}
        if not isinstance(bundle, dict):
            return PushResult(sidecar, error="status: bundle is not an object")
        return PushResult(
            sidecar,
            digest=_digest(bundle.get("digest")),
            serial=_serial(bundle.get("serial")),
            pins=_pins(data.get("pins")),
            head=_head(data.get("audit")),
            takes_delta=data.get("bundleDelta") is True,
            grants_used=reported_uses(data.get("grantsLastUsed")),
            consent=data.get("consent"),
            audit_key=data.get("auditKey"),
            fields=_fields(data.get("bundleFields")),
        )

    async def put(
        self, sidecar: Sidecar, admin_port: int, path: str, content: bytes
    ) -> httpx.Response:
        """One PUT to the sidecar's admin port, within the push limits (no retries)."""
        return await self._send(sidecar, "PUT", admin_url(sidecar, admin_port, path), content)

    async def _delta(
        self, sidecar: Sidecar, url: str, deltas: Sequence[bytes]
    ) -> PushResult | None:
        """Try each signed delta in turn; the installed result, or ``None`` to send in full."""
        for token in deltas:
            response = await self._retrying(sidecar, "PATCH", url, token)
            data = _json(response)
            if response.status_code == 200:
                digest, serial = _digest(data.get("digest")), _serial(data.get("serial"))
                found = PushResult(sidecar, digest, serial, takes_delta=True, by_delta=True)
                return replace(found, sent=len(token))
            if response.status_code != 400:  # 400: maybe another key; else it is refused
                break
        return None

    async def push(
        self,
        sidecar: Sidecar,
        admin_port: int,
        tokens: Sequence[bytes],
        deltas: Sequence[bytes] = (),
    ) -> PushResult:
        """Push one bundle, as a delta when one is given and taken, else signed by each
        candidate key in turn until one verifies."""
        url = admin_url(sidecar, admin_port, "/v1/bundle")
        problem = "no signed bundle to push"
        refused: str | None = None
        if deltas:
            try:
                installed = await self._delta(sidecar, url, deltas)
            except (httpx.HTTPError, ValueError) as exc:
                return PushResult(sidecar, error=f"push: {_describe(exc)}", takes_delta=True)
            if installed is not None:
                return installed
        for token in tokens:
            try:
                response = await self._retrying(sidecar, "PUT", url, token)
                data = _json(response)
            except (httpx.HTTPError, ValueError) as exc:
                return PushResult(sidecar, error=f"push: {_describe(exc)}")
            if response.status_code == 200:
                return PushResult(
                    sidecar,
                    digest=_digest(data.get("digest")),
                    serial=_serial(data.get("serial")),
                    takes_delta=data.get("delta") is True,
                    sent=len(token),
                )
            if response.status_code == 409:
                held = await self.status(sidecar, admin_port)
                return PushResult(
                    sidecar,
                    digest=held.digest,
                    serial=held.serial,
                    error="rollback refused",
                    rollback_serial=held.serial,
                )
            problem = f"push: HTTP {response.status_code}: {str(data.get('error', ''))[:200]}"
            if 400 <= response.status_code < 500:
                refused = str(data.get("reason") or f"HTTP {response.status_code}")[:64]
            if response.status_code != 400:
                break
        return PushResult(sidecar, error=problem, refused=refused)

    async def _bounded(
        self, sidecars: Sequence[Sidecar], call: Callable[[Sidecar], Awaitable[PushResult]]
    ) -> list[PushResult]:
        """Run ``call`` for every sidecar at once; whatever has not finished within the push
        deadline is cancelled and reported as failed, so one round of one server is bounded."""
        tasks = [asyncio.ensure_future(call(s)) for s in sidecars]
        if not tasks:
            return []
        deadline = self.settings.push.deadline_seconds
        try:
            _, pending = await asyncio.wait(tasks, timeout=deadline)
        finally:  # past the deadline, or the sync itself cancelled: leave nothing running
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        outcomes = []
        for sidecar, task in zip(sidecars, tasks, strict=True):
            if task in pending:
                self._silence(sidecar, True)
                outcomes.append(PushResult(sidecar, error=f"no answer within {deadline:g}s"))
            else:
                outcomes.append(task.result())
        return outcomes

    async def push_all(
        self,
        sidecars: Sequence[Sidecar],
        admin_port: int,
        tokens: Callable[[Sidecar], list[bytes]],
        deltas: Callable[[Sidecar], list[bytes]] = lambda s: [],
    ) -> list[PushResult]:
        """Push to every sidecar at once; one PushResult each, in the same order."""
        return await self._bounded(
            sidecars, lambda s: self.push(s, admin_port, tokens(s), deltas(s))
        )

    async def status_all(
        self,
        sidecars: Sequence[Sidecar],
        admin_port: int,
        known: Mapping[str, PushResult] | None = None,
    ) -> list[PushResult]:
        """Read every sidecar's status at once. ``known`` (pod → a status this pass already
        read without error from the same incarnation) is used instead of reading again."""
        reuse = [
            r
            for s in sidecars
            if known is not None
            and (r := known.get(s.pod)) is not None
            and r.error is None
            and r.sidecar.incarnation == s.incarnation
        ]
        fresh = {r.sidecar.pod for r in reuse}
        rest = [s for s in sidecars if s.pod not in fresh]
        read = await self._bounded(rest, lambda s: self.status(s, admin_port)) if rest else []
        return reuse + read


def _json(response: httpx.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    data = orjson.loads(response.content)
    return data if isinstance(data, dict) else {}


def _digest(value: Any) -> str | None:
    """A digest as a sidecar reports it: a short printable string, else nothing."""
    if isinstance(value, str) and 0 < len(value) <= MAX_DIGEST and value.isascii():
        return value
    return None


def _serial(value: Any) -> int | None:
    """A serial as a sidecar reports it: a non-negative int (bool is not one), else nothing."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SERIAL:
        return value
    return None


def _pins(value: Any) -> dict[str, str] | None:
    """Tool pins as a sidecar reports them, bounded in count and size; others are dropped."""
    if not isinstance(value, dict):
        return None
    pins: dict[str, str] = {}
    for tool, digest in value.items():
        if len(pins) >= MAX_PINS:
            break
        if isinstance(tool, str) and 0 < len(tool) <= MAX_TOOL_NAME and _digest(digest):
            pins[tool] = digest
    return pins


def _fields(value: Any) -> frozenset[str]:
    """The later bundle fields a sidecar says it knows; absent (a format-1 sidecar) or not a
    list of short names: none, so a feature is never assumed known. Bounded in count and size."""
    if not isinstance(value, list):
        return frozenset()
    names = (v for v in value[:MAX_FIELDS] if isinstance(v, str))
    return frozenset(n for n in names if 0 < len(n) <= MAX_FIELD_NAME and n.isascii())


def _head(audit: Any) -> str | None:
    return valid_head(audit.get("head")) if isinstance(audit, dict) else None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
