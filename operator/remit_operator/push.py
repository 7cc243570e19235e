"""Pushing signed bundles to gateway sidecars over their admin API, concurrently, with retries.

    PUT /v1/bundle  (compact JWS)  → 200 {"digest", "serial", "changed"} | 409 rollback | 400 bad
    GET /v1/status                 → {"ready", "bundle": {"digest", "serial", ...} | null, "pins"}

A push to one sidecar is retried on connection errors, timeouts and 5xx with exponential
backoff, up to ``REMIT_PUSH_RETRIES`` times. A 400 (signature) moves on to the next candidate
key (a rotation in progress) and is not retried with the same one. A 409 reads the sidecar's
serial so the caller can re-sign above it. At most ``REMIT_PUSH_CONCURRENCY`` requests are in
flight; all sidecars of a server are pushed at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from remit_operator.index import Sidecar
from remit_operator.settings import Settings

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one sidecar holds after a push or a status read."""

    sidecar: Sidecar
    digest: str | None = None
    serial: int | None = None
    error: str | None = None
    rollback_serial: int | None = None  # set when the sidecar refused a rollback (409)
    pins: dict[str, str] | None = None

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
    """One HTTP client and one concurrency limit for every sidecar of every server."""

    def __init__(self, settings: Settings, *, sleep: Sleep = asyncio.sleep) -> None:
        self.settings = settings
        self._sleep = sleep
        self._limit = asyncio.Semaphore(settings.push_concurrency)
        limits = httpx.Limits(max_connections=settings.push_concurrency * 2)
        self._http = httpx.AsyncClient(timeout=settings.push_timeout_seconds, limits=limits)

    async def close(self) -> None:
        """Close every connection."""
        await self._http.aclose()

    async def _send(self, method: str, url: str, content: bytes | None = None) -> httpx.Response:
        async with self._limit:
            return await self._http.request(method, url, content=content)

    async def _retrying(
        self, method: str, url: str, content: bytes | None = None
    ) -> httpx.Response:
        """Send; retry transport errors and 5xx with exponential backoff; return the last answer."""
        delay = self.settings.push_backoff_seconds
        attempt = 0
        while True:
            try:
                response = await self._send(method, url, content)
                if response.status_code < 500 or attempt >= self.settings.push_retries:
                    return response
            except httpx.HTTPError:
                if attempt >= self.settings.push_retries:
                    raise
            attempt += 1
            await self._sleep(delay)
            delay *= 2

    async def status(self, sidecar: Sidecar, admin_port: int) -> Outcome:
        """Read what the sidecar holds (``GET /v1/status``)."""
        url = admin_url(sidecar, admin_port, "/v1/status")
        try:
            response = await self._retrying("GET", url)
            data = _json(response)
        except (httpx.HTTPError, ValueError) as exc:
            return Outcome(sidecar, error=f"status: {_describe(exc)}")
        if response.status_code != 200:
            return Outcome(sidecar, error=f"status: HTTP {response.status_code}")
        bundle = data.get("bundle") or {}
        pins = data.get("pins")
        return Outcome(
            sidecar,
            digest=bundle.get("digest"),
            serial=bundle.get("serial"),
            pins={str(k): str(v) for k, v in pins.items()} if isinstance(pins, dict) else None,
        )

    async def push(self, sidecar: Sidecar, admin_port: int, tokens: Sequence[str]) -> Outcome:
        """Push one bundle, signed by each candidate key in turn until one verifies."""
        url = admin_url(sidecar, admin_port, "/v1/bundle")
        problem = "no signed bundle to push"
        for token in tokens:
            try:
                response = await self._retrying("PUT", url, token.encode())
                data = _json(response)
            except (httpx.HTTPError, ValueError) as exc:
                return Outcome(sidecar, error=f"push: {_describe(exc)}")
            if response.status_code == 200:
                return Outcome(sidecar, digest=data.get("digest"), serial=data.get("serial"))
            if response.status_code == 409:
                held = await self.status(sidecar, admin_port)
                return Outcome(
                    sidecar,
                    digest=held.digest,
                    serial=held.serial,
                    error="rollback refused",
                    rollback_serial=held.serial,
                )
            problem = f"push: HTTP {response.status_code}: {data.get('error', '')}"
            if response.status_code != 400:
                break
        return Outcome(sidecar, error=problem)

    async def push_all(
        self, sidecars: Sequence[Sidecar], admin_port: int, tokens: Callable[[Sidecar], list[str]]
    ) -> list[Outcome]:
        """Push to every sidecar at once; one Outcome each, in the same order."""
        return list(await asyncio.gather(*(self.push(s, admin_port, tokens(s)) for s in sidecars)))

    async def status_all(self, sidecars: Sequence[Sidecar], admin_port: int) -> list[Outcome]:
        """Read every sidecar's status at once."""
        return list(await asyncio.gather(*(self.status(s, admin_port) for s in sidecars)))


def _json(response: httpx.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    data = orjson.loads(response.content)
    return data if isinstance(data, dict) else {}


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
