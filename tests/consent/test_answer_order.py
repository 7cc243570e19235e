"""What the consent page records when answers race or a step fails between an approval's
record and its grant (``consent/approval.py``, docs/consent.md): a double click is one approval
and one grant; every ``approved`` that made no grant is followed by ``failed`` or ``duplicate``
naming it; a store that cannot be read or written answers 503, never a 500.

The consent service runs in this process (uvicorn on a loopback socket it was handed, so it
listens before its thread starts) with the demo issuer, and Alice answers with an HTTP client
(``tests/support/human.py``). Its recorder and its store are the test's own, so the test
decides when a record is written or fails: the race is ordered by events, not by sleeps.
"""

from __future__ import annotations

import asyncio
import queue
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn

from remit.api.consentgrant import ConsentGrant
from remit.audit.records import ConsentRecord
from remit.consent.app import ConsentService, create_app
from remit.consent.kube import KubeStore
from remit.consent.login import OidcLogin
from remit.consent.serial import KeyedLocks
from remit.consent.settings import ConsentSettings
from remit.consent.store import DirectoryStore
from remit.demo.issuer import Issuer
from remit.errors import AuditError, ConsentBusyError, GrantStoreError
from remit.policy.consentrequest import ConsentRequest, ConsentSealer, new_key
from tests.support.human import Browser, durations, form_fields

ALICE = "alice@example.com"
Event = tuple[str, str]


class Chain:
    """The page's recorder: keeps what it was given, and can hold or fail a record."""

    def __init__(self, events: queue.Queue[Event]) -> None:
        self.records: list[ConsentRecord] = []
        self.events = events
        self.hold_first_approval: threading.Event | None = None
        self.unsynced: set[str] = set()  # answers written, then their sync fails
        self.after: Callable[[ConsentRecord], None] = lambda _: None

    async def __call__(self, entry: ConsentRecord) -> None:
        gate, self.hold_first_approval = self.hold_first_approval, None
        if gate is not None and entry.answer == "approved":
            self.events.put(("recording", entry.id))
            assert await asyncio.to_thread(gate.wait, 30)
        self.records.append(entry)
        if entry.answer in self.unsynced:
            raise AuditError("the sync point failed: input/output error")
        self.after(entry)

    def answers(self) -> list[str]:
        return [r.answer for r in self.records]


class Store(DirectoryStore):
    """The policy directory, saying when an answer has checked for its grant."""

    def __init__(self, directory: Path, events: queue.Queue[Event]) -> None:
        super().__init__(directory)
        self.events = events
        self.create_fails: BaseException | None = None

    def exists(self, grant: ConsentGrant) -> bool:
        found = super().exists(grant)
        self.events.put(("checked", str(found)))  # after the check: its answer is final
        return found

    def create(self, grant: ConsentGrant) -> None:
        if self.create_fails is not None:
            raise self.create_fails
        super().create(grant)


class Watched(KeyedLocks):
    """The page's locks, saying whether an answer arrived while another held its request."""

    def __init__(self, events: queue.Queue[Event]) -> None:
        super().__init__()
        self.events = events

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        self.events.put(("held" if self.locked(key) else "free", key))
        async with super().hold(key):
            yield


@dataclass
class Page:
    url: str
    issuer: Issuer
    service: ConsentService
    chain: Chain
    store: Store
    sealer: ConsentSealer
    events: queue.Queue[Event] = field(default_factory=queue.Queue)

    def link(self, request_id: str) -> tuple[str, ConsentRequest]:
        now = int(time.time())
        consent = ConsentRequest(
            id=request_id, server="agents/files", issuer=self.issuer.issuer, subject=ALICE,
            agent="notes-bot", tool="write_file", tool_hash=None, rule="agents/notes-bot#w",
            rule_when=None, max_seconds=3600, issued_at=now, expires_at=now + 600,
        )  # fmt: skip
        token = self.sealer.seal(consent)
        return f"{self.url}/consent?r={token}", consent

    def grant_file(self, request_id: str) -> Path:
        return self.store.directory / f"consent-{request_id.lower()}.yaml"

    def next_event(self, kind: str | None = None) -> Event:
        while True:
            event = self.events.get(timeout=30)
            if kind is None or event[0] == kind:
                return event


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    events: queue.Queue[Event] = queue.Queue()
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    key = new_key()
    with Issuer() as issuer:
        issuer.login.register("remit-consent", f"{url}/callback")
        settings = ConsentSettings(public_url=url, issuer=issuer.issuer, key=key,
                                   store="directory", directory=tmp_path)  # fmt: skip
        chain, store = Chain(events), Store(tmp_path, events)
        sealer = ConsentSealer(key)
        service = ConsentService(settings=settings, sealer=sealer, store=store,
                                 login=OidcLogin(settings, None), record=chain)  # fmt: skip
        service.answering = Watched(events)
        app = create_app(service, secrets.token_bytes(32))
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]})
        thread.start()
        try:
            yield Page(url, issuer, service, chain, store, sealer, events)
        finally:
            server.should_exit = True
            thread.join(10)
            listener.close()
    assert len(service.answering) == 0  # no lock outlives its answers


def _signed_in(page: Page, request_id: str) -> tuple[Browser, httpx.Response]:
    link, _ = page.link(request_id)
    browser = Browser()
    return browser, browser.sign_in(link, ALICE)


def _approve(page: Page, browser: Browser, form: httpx.Response) -> httpx.Response:
    data = {**form_fields(form.text), "answer": "approve", "scope": "tool",
            "duration": durations(form.text)[0]}  # fmt: skip
    return browser.go("POST", f"{page.url}/consent/answer", data=data,
                      headers={"Origin": page.url})  # fmt: skip


def _twin(browser: Browser) -> Browser:
    """A second tab: the same session cookie, its own connection."""
    other = Browser()
    other.cookies = {host: dict(jar) for host, jar in browser.cookies.items()}
    return other


def test_a_double_click_is_one_approval_and_one_grant(page: Page) -> None:
    rid = "01DOUBLECLICK0000000000000000000"
    browser, form = _signed_in(page, rid)
    page.chain.hold_first_approval = release = threading.Event()
    with browser, _twin(browser) as second, ThreadPoolExecutor(2) as pool:
        first = pool.submit(_approve, page, browser, form)
        page.next_event("recording")  # the first approval waits for its record's sync...
        again = pool.submit(_approve, page, second, form)
        # ...while the second arrives: it waits for the first (held), or checks and finds no
        # grant yet (checked False) — either way it has gone as far as it can before the first
        # approval's record is done.
        assert page.next_event()[0] in {"held", "checked"}
        release.set()
        answers = sorted([first.result(), again.result()], key=lambda r: r.status_code)
    assert [r.status_code for r in answers] == [200, 409]  # the grants page; already answered
    assert "already exists" in answers[1].text
    assert page.chain.answers() == ["approved"]  # the second recorded nothing
    assert page.grant_file(rid).exists()


def test_a_grant_another_replica_wrote_first_is_recorded_duplicate_not_failed(
    page: Page,
) -> None:
    rid = "01OTHERREPLICA00000000000000000"
    browser, form = _signed_in(page, rid)

    def other_replica(entry: ConsentRecord) -> None:  # writes the grant while this one records
        if entry.answer == "approved":  # (what it wrote does not matter: the name is taken)
            page.grant_file(rid).write_text("kind: ConsentGrant\n")

    page.chain.after = other_replica
    with browser:
        answered = _approve(page, browser, form)
    assert answered.status_code == 409, answered.text[:2000]
    assert "another answer to this request wrote it first" in answered.text
    approved, duplicate = page.chain.records
    assert (approved.answer, duplicate.answer) == ("approved", "duplicate")
    assert duplicate.cancels == approved.id
    assert (duplicate.grant, duplicate.expires_at) == (approved.grant, approved.expires_at)


def test_an_approval_whose_sync_fails_is_followed_by_failed_naming_it(page: Page) -> None:
    rid = "01UNSYNCED000000000000000000000"
    browser, form = _signed_in(page, rid)
    page.chain.unsynced = {"approved"}  # written, then its sync point fails
    with browser:
        answered = _approve(page, browser, form)
    assert answered.status_code == 503, answered.text[:2000]
    assert "could not be recorded, so no grant was made" in answered.text
    assert not page.grant_file(rid).exists()
    approved, failed = page.chain.records
    assert (approved.answer, failed.answer) == ("approved", "failed")
    assert failed.cancels == approved.id
    assert failed.expires_at is not None
    assert failed.expires_at == approved.expires_at


@pytest.mark.parametrize(
    "error",
    [GrantStoreError("cannot write grant: no space left"), RuntimeError("a bug in the store")],
)
def test_any_failure_to_write_the_grant_is_recorded_failed_and_answers_503(
    page: Page, error: BaseException
) -> None:
    rid = "01UNWRITTEN00000000000000000000"
    browser, form = _signed_in(page, rid)
    page.store.create_fails = error
    with browser:
        answered = _approve(page, browser, form)
    assert answered.status_code == 503, answered.text[:2000]
    assert "its grant could not be written" in answered.text
    assert "a bug in the store" not in answered.text  # an unexpected error's text stays in the log
    approved, failed = page.chain.records
    assert (failed.answer, failed.cancels, failed.grant) == ("failed", approved.id, approved.grant)
    assert failed.expires_at == approved.expires_at


@contextmanager
def _unreachable_api_server() -> Iterator[KubeStore]:
    """A KubeStore whose API server refuses connections (a port bound, never listened on)."""
    from kubernetes import client  # noqa: PLC0415

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        configuration = client.Configuration(host=f"http://127.0.0.1:{held.getsockname()[1]}")
        configuration.retries = 0
        with client.ApiClient(configuration) as api:
            yield KubeStore(api)


def test_an_unreachable_api_server_is_a_grant_store_error() -> None:
    grant = ConsentGrant.model_validate(
        {"apiVersion": "remit.dev/v1alpha1", "kind": "ConsentGrant",
         "metadata": {"name": "consent-x", "namespace": "agents"},
         "spec": {"subject": ALICE, "agent": "notes-bot", "server": "files",
                  "tools": ["write_file"], "expiresAt": "2030-01-01T00:00:00Z",
                  "grantedBy": ALICE}}
    )  # fmt: skip
    with _unreachable_api_server() as store:
        calls: list[Callable[[], object]] = [
            lambda: store.exists(grant),
            lambda: store.create(grant),
            store.grants,
            lambda: store.revoke("agents", "consent-x", ALICE, datetime.now(UTC)),
        ]
        for call in calls:
            with pytest.raises(GrantStoreError, match="Connection refused"):
                call()


def test_grants_that_cannot_be_read_answer_503_with_nothing_recorded(page: Page) -> None:
    """The check before an approval, and the look-up before a revocation."""
    rid = "01NOAPISERVER000000000000000000"
    browser, form = _signed_in(page, rid)
    with _unreachable_api_server() as store, browser:
        page.service.store = store
        answered = _approve(page, browser, form)
        revoke = {"csrf": form_fields(form.text)["csrf"], "namespace": "agents", "name": "x"}
        revoked = browser.go("POST", f"{page.url}/grants/revoke", data=revoke,
                             headers={"Origin": page.url})  # fmt: skip
    assert answered.status_code == 503, answered.text[:2000]
    assert "nothing was recorded or granted" in answered.text
    assert revoked.status_code == 503, revoked.text[:2000]  # not a 500: its grants were not read
    assert page.chain.records == []


async def test_the_lock_map_holds_only_requests_being_answered_and_is_bounded() -> None:
    locks = KeyedLocks(limit=1)
    async with locks.hold("a"):
        assert locks.locked("a")
        with pytest.raises(ConsentBusyError, match="1 consent requests are being answered"):
            async with locks.hold("b"):
                pass
        assert len(locks) == 1
    assert len(locks) == 0
    async with locks.hold("b"):  # room again
        pass
    assert len(locks) == 0
