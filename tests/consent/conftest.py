"""The consent loop as users run it: the demo issuer (with its login page), a recording MCP
server, ``remit gateway -f DIR`` serving the consent page, and Debian's Chromium driven by
Playwright. One of each per session.

Chromium comes from the repository's setup (``scripts/browser.py``, run by ``make test``);
without it these tests skip, saying so, unless ``REMIT_REQUIRE_BROWSER=1`` (CI) makes them fail.
Screenshots go to ``tmp/artifacts/consent/`` (not committed).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from remit.demo.issuer import Issuer
from remit.policy.consentrequest import new_key
from tests.support import stack
from tests.support.ports import free_port

CHROMIUM = os.environ.get("REMIT_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = stack.REPO / "tmp" / "artifacts" / "consent"
ALICE = "alice@example.com"
BOB = "bob@example.com"
BOT = "support-bot"
AUDITOR = "auditor@example.com"

CONSENT_POLICY = """\
apiVersion: remit.dev/v1alpha1
kind: AgentPolicy
metadata: {name: notes-bot, namespace: agents}
spec:
  servers: [files]
  agents: [notes-bot]
  subjects: {users: ["*@example.com"]}
  rules:
  - name: write-with-consent
    effect: Allow
    tools: [write_file]
    requireConsent: true
    consentMaxDuration: 8h
    when: 'args.path.startsWith("/data/")'
"""


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401, PLC0415
    except ImportError:
        return "the playwright package is not installed"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not found (apt-get install chromium; make test runs scripts/browser.py)"
    return None


@dataclass
class Loop:
    """The running parts."""

    issuer: Issuer
    gateway: stack.GatewayProcess
    upstream: stack.Upstream
    consent_url: str
    audience: str
    key: bytes
    policy_dir: Path
    audit_file: Path

    def token(self, subject: str = ALICE, agent: str = "notes-bot") -> str:
        return self.issuer.mint(subject, agent=agent, audience=self.audience, scopes=["mcp:tools"])


@pytest.fixture(scope="session")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    logs = tmp_path_factory.mktemp("consent")
    key = new_key()
    (logs / "consent.key").write_bytes(key)
    with Issuer() as issuer, stack.upstream(logs) as upstream:
        ports = stack.reserve_gateway_ports()
        consent_port = free_port()
        consent_url = f"http://{stack.HOST}:{consent_port}"
        issuer.login.register("remit-consent", f"{consent_url}/callback")
        audience = stack.audience_for(ports[0])
        server = stack.server_yaml(issuer.issuer, audience).replace(
            "toolPinning: Enforce", "toolPinning: Enforce\n  audit: {arguments: Redacted}"
        )
        policy = stack.write_policy_dir(
            logs / "policy", server, examples=False, extra={"notes.yaml": CONSENT_POLICY}
        )
        audit = logs / "decisions.jsonl"
        env = {
            "REMIT_CONSENT_KEY_FILE": str(logs / "consent.key"),
            "REMIT_CONSENT_ADMINS": AUDITOR,
        }
        argv_extra = ["--consent-listen", f"{stack.HOST}:{consent_port}"]
        with _gateway(logs, upstream, ports, policy, audit, env, argv_extra) as gateway:
            gateway.process.wait_for_port(consent_port)
            yield Loop(issuer, gateway, upstream, consent_url, audience, key, policy, audit)


def _gateway(
    logs: Path,
    upstream: stack.Upstream,
    ports: tuple[int, int],
    policy: Path,
    audit: Path,
    env: dict[str, str],
    extra: list[str],
) -> Any:
    argv = [stack.REMIT, "gateway", "--upstream", upstream.url, "-f", str(policy)]
    argv += ["--server", "files", "--listen", f"{stack.HOST}:{ports[0]}"]
    argv += ["--admin-listen", f"{stack.HOST}:{ports[1]}", "--audit-file", str(audit), *extra]
    return _running(stack.Process.start(f"gateway-{ports[0]}", argv, logs, env=env), ports, audit)


class _running:  # noqa: N801 - used as a context manager, like a function
    def __init__(self, process: stack.Process, ports: tuple[int, int], audit: Path) -> None:
        self.process, self.ports, self.audit = process, ports, audit

    def __enter__(self) -> stack.GatewayProcess:
        self.process.wait_for_port(self.ports[0])
        self.process.wait_for_port(self.ports[1])
        return stack.GatewayProcess(self.process, self.ports[0], self.ports[1], self.audit)

    def __exit__(self, *_: object) -> None:
        self.process.stop()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One Chromium for this package, closed when its last test ends: Playwright's sync API keeps
    an event loop set on the main thread while it runs, which every later asyncio test would
    otherwise inherit and fail on."""
    missing = _browser_missing()
    if missing is not None:
        if os.environ.get("REMIT_REQUIRE_BROWSER"):
            pytest.fail(f"REMIT_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) per test."""
    context = browser.new_context()
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def screenshot(page: Any, name: str) -> Path:
    """Save a screenshot of the page as a test artefact."""
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
