"""Shared pieces: a manual clock, a real issuer on loopback and authenticators that use both."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import httpx
import pytest

from remit.demo.issuer import DEFAULT_AUDIENCE, Issuer
from remit.gateway.authn import Authenticator, AuthSettings

AUDIENCE = DEFAULT_AUDIENCE
SCOPE = "mcp:tools"


class ManualClock:
    """Wall and monotonic time that only move when a test says so."""

    def __init__(self) -> None:
        self.wall = 1_800_000_000.0
        self.mono = 5_000.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def issuer(clock: ManualClock) -> Iterator[Issuer]:
    with Issuer("/realms/acme", clock=clock.time) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """The shared session the gateway fetches keys with (aiohttp, as in production)."""
    async with aiohttp.ClientSession() as shared:
        yield shared


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A test's own HTTP client, for calling servers as a caller would."""
    async with httpx.AsyncClient(timeout=5) as caller:
        yield caller


AuthenticatorFactory = Callable[..., Authenticator]


@pytest.fixture
def make_authenticator(
    issuer: Issuer, client: aiohttp.ClientSession, clock: ManualClock
) -> AuthenticatorFactory:
    """Build an authenticator for ``issuer``; keyword arguments override ``AuthSettings``."""

    def make(**overrides: Any) -> Authenticator:
        fields: dict[str, Any] = {
            "issuer": issuer.issuer,
            "audience": AUDIENCE,
            "required_scopes": (SCOPE,),
            **overrides,
        }
        return Authenticator.create(
            AuthSettings(**fields), client, now=clock.time, clock=clock.monotonic
        )

    return make


@pytest.fixture
def authenticator(make_authenticator: AuthenticatorFactory) -> Authenticator:
    return make_authenticator()


def bearer(token: str) -> str:
    return f"Bearer {token}"
