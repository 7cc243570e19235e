"""Forwarding to the MCP server on loopback through one shared, pooled HTTP client.

The proxy opens one aiohttp session for its lifetime (created in the ASGI lifespan) and sends
every request through it, so calls reuse warm keep-alive connections. This module also owns
which headers cross the boundary. Towards the upstream, hop-by-hop headers are dropped, the
caller's ``Authorization`` and any client-sent ``X-Remit-*`` (in any spelling,
``X_Remit_Subject`` too) never pass, ``Host`` is the upstream's own (so the SDK's
DNS-rebinding check accepts it), and compression is not negotiated (the proxy must read
JSON-RPC responses). Back to the client, only the response headers in ``PASSED_BACK`` pass,
on every answer (``UpstreamResponse.client_headers``): cookies, redirects, server banners,
hop-by-hop and any other header the upstream sets stay at the gateway.
A response says which ``kind`` of body it has from its media type parsed per RFC 9110
(``json``, ``sse``, or None: nothing the gateway can inspect), and is read within
``ResponseLimits`` (size, time). Failures become ``UpstreamError`` with the HTTP status the
client should see (502 unreachable, broken or misbehaving, 504 too slow) and a reason code for
the outcome record.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from remit.errors import MediaTypeError, UpstreamError
from remit.gateway.bounds import DEFAULT_LIMITS, ResponseLimits
from remit.gateway.fields import canonical, remit_field
from remit.gateway.mediatype import EVENT_STREAM, JSON, parse_media_type
from remit.policy.decision import Reason

# Reason codes of upstream failures (the ``error`` of an outcome record starts with one).
UNAVAILABLE: Final = Reason.UPSTREAM_UNAVAILABLE
TIMEOUT: Final = Reason.UPSTREAM_TIMEOUT
BROKEN: Final = Reason.UPSTREAM_BROKEN
HTTP_ERROR: Final = Reason.UPSTREAM_HTTP_ERROR
NO_RESPONSE: Final = Reason.NO_RESPONSE
TOO_LARGE: Final = Reason.RESPONSE_TOO_LARGE
TOO_DEEP: Final = Reason.RESPONSE_TOO_DEEP
INVALID: Final = Reason.INVALID_RESPONSE
UNINSPECTABLE: Final = Reason.UNINSPECTABLE_RESPONSE

BodyKind = Literal["json", "sse"]

HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_NOT_FORWARDED: Final = HOP_BY_HOP | {
    "host",
    "authorization",
    "content-length",
    "accept-encoding",
    "cookie",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
}
PASSED_BACK: Final = frozenset(
    {b"mcp-session-id", b"mcp-protocol-version", b"cache-control", b"retry-after", b"allow"}
)
"""The upstream response headers a client may receive; every other one stays at the gateway.

``Mcp-Session-Id`` (the session the gateway binds to the caller) and ``Mcp-Protocol-Version``
are the MCP transport's; ``Cache-Control``, ``Retry-After`` (429, 503) and ``Allow`` (405)
keep their HTTP meaning. The gateway writes ``Content-Type`` and ``Content-Length`` itself,
and on an event stream its own ``Cache-Control`` and ``X-Accel-Buffering`` (``stream.py``).
"""
_LISTS: Final = frozenset({b"cache-control", b"allow"})  # comma lists: each line passes
_SESSION: Final = b"mcp-session-id"


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """Where the MCP server listens and how patient to be with it (seconds)."""

    url: str = "http://127.0.0.1:8080/mcp"
    connect_timeout: float = 5.0
    response_timeout: float = 120.0
    max_connections: int = 256
    limits: ResponseLimits = field(default_factory=lambda: DEFAULT_LIMITS)


def request_headers(
    client_headers: Iterable[tuple[str, str]], extra: Mapping[str, str]
) -> CIMultiDict[str]:
    """The headers to send upstream: the client's end-to-end headers plus ``extra``."""
    connection = {
        token.strip().lower()
        for name, value in client_headers
        if name == "connection"
        for token in value.split(",")
    }
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in client_headers:
        spelled = canonical(name)  # X_Remit_Subject reaches some frameworks as X-Remit-Subject
        if spelled in _NOT_FORWARDED or name in connection or remit_field(spelled):
            continue
        headers.add(name, value)
    for name, value in extra.items():
        headers[name] = value
    return headers


def body_kind(content_types: list[bytes], encodings: list[bytes]) -> BodyKind | None:
    """What the gateway can read a body as, from its Content-Type and Content-Encoding values.

    The media type is parsed per RFC 9110 (case-insensitive, parameters, quoting); a missing,
    repeated or malformed Content-Type, a charset other than UTF-8, or any Content-Encoding
    means the gateway cannot read the body as the client would: None.
    """
    if len(content_types) != 1 or any(
        v.strip().lower() not in (b"", b"identity") for v in encodings
    ):
        return None
    try:
        media = parse_media_type(content_types[0].decode("latin-1"))
    except MediaTypeError:
        return None
    if not media.is_utf8_text():
        return None
    if media.essence == JSON:
        return "json"
    if media.essence == EVENT_STREAM:
        return "sse"
    return None


def _too_large(limit: int) -> UpstreamError:
    return UpstreamError(502, f"upstream response exceeds {limit} bytes", TOO_LARGE)


def _broken(exc: BaseException) -> UpstreamError:
    return UpstreamError(502, f"upstream response broke off ({type(exc).__name__})", BROKEN)


class UpstreamResponse:
    """A response whose headers have arrived; read the body whole or as it streams, bounded
    by ``limits``."""

    __slots__ = ("_kind", "_response", "headers", "limits", "status")

    def __init__(
        self, response: aiohttp.ClientResponse, limits: ResponseLimits = DEFAULT_LIMITS
    ) -> None:
        self._response = response
        self.status = response.status
        self.headers = [(name.lower(), value) for name, value in response.raw_headers]
        self.limits = limits
        self._kind: BodyKind | Literal[False] | None = False  # False: not yet parsed

    def header(self, name: bytes) -> str | None:
        """First value of a (lowercase) response header, as the upstream sent it."""
        for key, value in self.headers:
            if key == name:
                return value.decode("latin-1")
        return None

    def client_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers the client may see (``PASSED_BACK``), in ASGI form. A field with one
        value passes its first only; ``Mcp-Session-Id`` passes only on a 2xx answer, so the
        client holds exactly the session id the gateway bound to it (``proxy.py``)."""
        seen: set[bytes] = set()
        passed: list[tuple[bytes, bytes]] = []
        for name, value in self.headers:
            if name not in PASSED_BACK or (name in seen and name not in _LISTS):
                continue
            if name == _SESSION and not 200 <= self.status < 300:
                continue
            seen.add(name)
            passed.append((name, value))
        return passed

    @property
    def content_type(self) -> str:
        """The Content-Type as sent (for messages); several are joined with ", "."""
        return ", ".join(v.decode("latin-1") for k, v in self.headers if k == b"content-type")

    @property
    def kind(self) -> BodyKind | None:
        """``json`` or ``sse`` when the body is one the gateway can inspect, else None
        (parsed from the headers once: the relay asks more than once per answer)."""
        if self._kind is False:
            self._kind = body_kind(
                [v for k, v in self.headers if k == b"content-type"],
                [v for k, v in self.headers if k == b"content-encoding"],
            )
        return self._kind

    @property
    def is_sse(self) -> bool:
        """Whether the body is an event stream."""
        return self.kind == "sse"

    @property
    def is_json(self) -> bool:
        """Whether the body is JSON."""
        return self.kind == "json"

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body: at most ``limit`` bytes (default ``limits.max_response_bytes``),
        within ``limits.read_timeout`` seconds; ``UpstreamError`` otherwise."""
        limit = self.limits.max_response_bytes if limit is None else limit
        declared = self._response.content_length
        if declared is not None and declared > limit:
            raise _too_large(limit)
        content = self._response.content
        if content.is_eof():  # the whole body came with the headers: nothing to wait for
            try:
                body = content.read_nowait()
            except (aiohttp.ClientError, OSError) as exc:
                raise _broken(exc) from exc
            if len(body) > limit:
                raise _too_large(limit)
            return body
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.limits.read_timeout):
                while chunk := await content.readany():
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(limit)
                    chunks.append(chunk)
        except TimeoutError as exc:
            raise UpstreamError(
                504, f"upstream response not complete in {self.limits.read_timeout:g}s", TIMEOUT
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise _broken(exc) from exc
        return b"".join(chunks)

    def body_empty(self) -> bool:
        """Whether the body is known to be empty from what has arrived (``Content-Length: 0``,
        a 204 or 304, or a body that ended with the headers), without waiting for more."""
        if self.status in (204, 304) or self._response.content_length == 0:
            return True
        return self._response.content.at_eof()

    async def next_chunk(self, timeout: float | None) -> bytes:
        """The next body chunk as it arrives (b"" at the end), waiting at most ``timeout``;
        what has already arrived is returned at once, without a timer."""
        content = self._response.content
        try:
            if (chunk := content.read_nowait()) or content.is_eof():
                return chunk
            async with asyncio.timeout(timeout):
                return await content.readany()
        except TimeoutError as exc:
            raise UpstreamError(504, "upstream stream stalled", TIMEOUT) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamError(502, f"upstream stream broke off ({type(exc).__name__})",
                                BROKEN) from exc  # fmt: skip

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive, each within ``limits.read_timeout``."""
        while chunk := await self.next_chunk(self.limits.read_timeout):
            yield chunk

    def close(self) -> None:
        """Release the connection (back to the pool when the body was fully read)."""
        self._response.release()

    def abort(self) -> None:
        """Close the connection now, whatever is left unread (the upstream sees it close)."""
        self._response.close()


class Upstream:
    """The shared client for one upstream MCP endpoint. ``start`` before use, ``close`` after."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        self._url = URL(settings.url)  # parsed once, not per request
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the connection pool."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.settings.max_connections, limit_per_host=0, force_close=False
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self.settings.connect_timeout, sock_read=None
                ),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
                raise_for_status=False,
                # One client serves every caller: an upstream's Set-Cookie must never be kept
                # and sent with another caller's request (and no jar to consult per request).
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def close(self) -> None:
        """Close the pool."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def send(
        self,
        method: str,
        headers: CIMultiDict[str],
        body: bytes | None,
        limits: ResponseLimits | None = None,
    ) -> UpstreamResponse:
        """Send one request and wait (up to ``response_timeout``) for the response headers;
        the body is then read within ``limits`` (default: the settings')."""
        if self._session is None:
            await self.start()
        assert self._session is not None
        try:
            async with asyncio.timeout(self.settings.response_timeout):
                response = await self._session.request(
                    method, self._url, headers=headers, data=body, allow_redirects=False
                )
        except TimeoutError as exc:
            raise UpstreamError(504, "upstream did not answer in time", TIMEOUT) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamError(
                502, f"upstream unavailable: {type(exc).__name__}", UNAVAILABLE
            ) from exc
        return UpstreamResponse(response, limits or self.settings.limits)
