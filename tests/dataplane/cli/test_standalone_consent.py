"""The standalone consent page loads on its first request (cli/standalone_consent.py): one
build however many requests arrive at once, and a build that fails answers 503 and is tried
again. The page itself is tested end to end in tests/consent (a real browser, a real gateway)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from remit.audit import AuditChain, FileSink
from remit.audit.records import ConsentRecord
from remit.cli import gateway_start, standalone_consent
from remit.cli.gateway_args import GatewayFlags
from remit.cli.standalone_consent import (
    PAGE_MODULES,
    LazyPage,
    check_page_modules,
    record_durably,
    standalone_listen,
)
from remit.errors import AuditError, CompileError, SettingsError, StartupError
from remit.gateway.app import Gateway
from remit.gateway.ports import listen_on
from remit.gateway.runner import ListenerSettings, bind
from remit.gateway.settings import from_environment
from tests.dataplane.audit.helpers import HeldSync


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


def test_a_page_that_keeps_failing_answers_503_each_time_and_logs_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    attempts: list[float] = []

    def build() -> Any:
        attempts.append(now[0])
        raise OSError("templates missing")

    page = LazyPage(build, clock=lambda: now[0])

    async def requests_at(times: list[float]) -> list[int]:
        statuses = []
        for moment in times:
            now[0] = moment
            statuses.append((await _get(page))[0])
        return statuses

    caplog.set_level(logging.ERROR, "remit.cli.standalone_consent")
    times = [1000.0, 1001.0, 1059.0, 1060.0, 1061.0, 1200.0]
    assert asyncio.run(requests_at(times)) == [503] * 6
    assert attempts == times  # every request tries again (a dependency may have been fixed)
    logged = [r.getMessage() for r in caplog.records]
    assert logged == [
        "the consent page cannot be loaded: templates missing",
        "the consent page cannot be loaded: templates missing (2 more failures since the last "
        "report)",
        "the consent page cannot be loaded: templates missing (1 more failures since the last "
        "report)",
    ]


def test_the_pages_modules_are_checked_at_start_without_importing_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check_page_modules()  # installed here (the dev extra includes consent): no error
    missing = (*PAGE_MODULES, ("remit_no_such_module",), ("remit.no_such_package.page",))
    monkeypatch.setattr(standalone_consent, "PAGE_MODULES", missing)
    with pytest.raises(StartupError) as raised:
        check_page_modules()
    message = str(raised.value)
    assert "remit_no_such_module, remit.no_such_package.page" in message
    assert "--consent-listen off" in message
    # That the check imports none of the stack is shown by the real process, in
    # test_gateway_args.py (test_the_gateway_process_imports_no_cli_framework_...).


def _approval(id_: str) -> ConsentRecord:
    return ConsentRecord(
        id=id_, time="2026-12-02T08:00:00.000Z", server="files", pod="", request="r1",
        answer="approved", subject="alice", agent="bot", tool="write_file",
        login_issuer="https://idp", login_subject="alice", scope="once", grant="ns/g",
    )  # fmt: skip


async def test_a_consent_record_is_on_disk_before_the_page_answers(tmp_path: Path) -> None:
    """In the default durability mode the standalone page's record (an approval) returns only
    once its fsync is done, and fails (the page answers the failure) if that fsync fails."""
    path = tmp_path / "audit.jsonl"
    sync = HeldSync(path)
    chain = AuditChain(
        FileSink(path, fsync_strict=False, fsync_function=sync), server="files", pod="p"
    )
    gateway = cast(Gateway, SimpleNamespace(chain=chain))
    recorded = asyncio.ensure_future(record_durably(gateway, _approval("c1")))
    await sync.started()
    for _ in range(20):
        await asyncio.sleep(0)
    assert not recorded.done()
    assert b'"c1"' in path.read_bytes()  # written, not yet synced: the page has not answered
    for _ in range(3):  # this sync, and any the chain's opening marker took
        sync.release.release()
    await recorded
    failing = asyncio.ensure_future(record_durably(gateway, _approval("c2")))
    sync.fail = True
    with pytest.raises(AuditError, match="fsync failed"):
        await failing
    await chain.close()


def test_the_auto_page_port_is_handed_to_the_page_alone_and_released_by_a_failed_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--consent-listen auto`` picks its port by listening and hands that socket to the page's
    listener (no process-wide map another listener on the same address could take it from);
    a start that fails before the page serves closes it."""
    picked: list[socket.socket] = []

    def listening(host: str, port: int, setting: str) -> socket.socket:
        picked.append(listen_on(host, port, setting))
        return picked[-1]

    def no_compile(*args: Any) -> Gateway:
        raise CompileError("the policy does not compile")

    monkeypatch.setattr(standalone_consent, "listen_on", listening)
    monkeypatch.setattr("remit.gateway.logs.log_to_stderr", lambda *args: None)
    monkeypatch.setattr("remit.gateway.serve.build_standalone", no_compile)
    flags = GatewayFlags(files=[tmp_path], server="files", upstream="http://127.0.0.1:9/mcp")
    with pytest.raises(CompileError):
        gateway_start._build(flags)
    assert len(picked) == 1
    assert picked[0].fileno() == -1  # released

    settings = from_environment({})
    settings = dataclasses.replace(
        settings, bundle=dataclasses.replace(settings.bundle, policy_dirs=(tmp_path,))
    )
    page = standalone_listen(settings, "auto")
    assert page is not None
    assert page.sock is picked[1]
    with page.sock:
        port = page.sock.getsockname()[1]
        assert page.address == f"127.0.0.1:{port}"
        mcp = ListenerSettings(port=port, name="REMIT_LISTEN (--listen)")
        with pytest.raises(StartupError, match=r"^REMIT_LISTEN \(--listen\): cannot listen"):
            bind(mcp)  # the page's socket is not handed to another listener on its address
