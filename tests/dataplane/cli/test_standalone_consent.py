"""The standalone consent page loads on its first request (cli/standalone_consent.py): one
build however many requests arrive at once, and a build that fails answers 503 and is tried
again. The page itself is tested end to end in tests/consent (a real browser, a real gateway)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from remit.cli.standalone_consent import LazyPage, standalone_listen
from remit.errors import SettingsError
from remit.gateway.settings import from_environment


def _answer(text: bytes) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": text})

    return app


async def _get(page: LazyPage) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    await page({"type": "http", "method": "GET", "path": "/"}, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_concurrent_first_requests_build_the_page_once() -> None:
    builds: list[int] = []

    def build() -> Any:
        builds.append(1)
        return _answer(b"page")

    page = LazyPage(build)
    assert not page.loaded

    async def three() -> list[tuple[int, bytes]]:
        return list(await asyncio.gather(_get(page), _get(page), _get(page)))

    assert asyncio.run(three()) == [(200, b"page")] * 3
    assert builds == [1]
    assert page.loaded


def test_a_page_that_cannot_be_built_answers_503_and_is_built_on_the_next_request() -> None:
    attempts: list[int] = []

    def build() -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("templates missing")
        return _answer(b"page")

    page = LazyPage(build)
    status, body = asyncio.run(_get(page))
    assert status == 503
    assert b"unavailable" in body
    assert b"templates missing" not in body  # the reason goes to the log, not to the browser
    assert asyncio.run(_get(page)) == (200, b"page")


@pytest.mark.parametrize(
    "value", ["nonsense", "127.0.0.1:notaport", "127.0.0.1:99999", "[::1]:x", "127.0.0.1:"]
)
def test_a_bad_consent_listen_is_a_settings_error_naming_the_flag(value: str) -> None:
    # Checked before anything else, whether or not a page would be served: exit code 2 with
    # one line (the real process: test_gateway_args.py), never a ValueError traceback.
    settings = from_environment({})
    with pytest.raises(SettingsError, match="--consent-listen"):
        standalone_listen(settings, value)
    assert standalone_listen(settings, "[::1]:8443") is None  # a file policy serves no page
