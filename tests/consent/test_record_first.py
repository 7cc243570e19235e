"""What the consent page records comes first: an approval is on the audit chain before its
grant is written, so a chain that cannot record means no grant (and a grant that then cannot
be written is recorded ``failed``, naming the approval it cancels); a revocation takes effect
first, so a chain that cannot record still leaves the grant revoked (docs/consent.md).

A real ``remit gateway -f DIR`` serves the page, its audit log and its policy directory each
on a real 64 KiB tmpfs that the test fills (``stack.tiny_filesystem``, root only: skipped
otherwise, failed instead with ``REMIT_REQUIRE_TMPFS=1`` as CI sets it), and Alice answers
with an HTTP client (``tests/support/human.py``): no Chromium needed. The session's issuer and
MCP server are shared with the browser tests (``conftest.loop``).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from remit.audit.explain import explain
from tests.consent.conftest import ALICE, CONSENT_POLICY, Loop, _gateway
from tests.consent.test_consent_loop import denied_with_link
from tests.support import mcp_wire, stack
from tests.support.human import Browser, durations, form_fields
from tests.support.ports import free_port


@dataclass
class Disk:
    """A tmpfs, and a file that fills it."""

    mount: Path

    def fill(self) -> None:
        fd = os.open(self.mount / ".filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            while _wrote(fd):
                pass
        finally:
            os.close(fd)

    def free(self) -> None:
        (self.mount / ".filler").unlink(missing_ok=True)


def _wrote(fd: int) -> bool:
    try:
        os.write(fd, b"\0" * 4096)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        return False
    return True


@dataclass
class Full:
    """The gateway (as a ``Loop``), the disk its audit log is on, and its policy directory's."""

    here: Loop
    audit: Disk
    policy: Disk

    def fill_audit(self) -> None:
        """Fill the audit log's disk, then have the gateway record calls until one finds no
        room (the log's last page had some): from then on its chain cannot record
        (``audit_unavailable``) until there is room again."""
        self.audit.fill()
        for _ in range(50):
            answer = mcp_wire.tool_call(self.here.gateway.url, "write_file",
                                        {"path": "/data/alice/x.txt", "content": "x"},
                                        token=self.here.token()).json()  # fmt: skip
            if answer.get("error", {}).get("data", {}).get("reason") == "audit_unavailable":
                return
        raise AssertionError("the gateway kept recording on a full disk")


@pytest.fixture(scope="module")
def full(loop: Loop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Full]:
    """A second standalone gateway with its consent page, its audit log and its policy
    directory each on a disk the test fills."""
    logs = tmp_path_factory.mktemp("record-first")
    with (
        stack.tiny_filesystem(logs / "audit") as audit_mount,
        stack.tiny_filesystem(logs / "policy") as policy_mount,
    ):
        ports = stack.reserve_gateway_ports()
        consent_port = free_port()
        consent_url = f"http://{stack.HOST}:{consent_port}"
        loop.issuer.login.register("remit-consent", f"{consent_url}/callback")
        audience = stack.audience_for(ports[0])
        server = stack.server_yaml(loop.issuer.issuer, audience)
        policy = stack.write_policy_dir(
            policy_mount, server, examples=False, extra={"notes.yaml": CONSENT_POLICY}
        )
        audit = audit_mount / "decisions.jsonl"
        (logs / "consent.key").write_bytes(loop.key)
        env = {"REMIT_CONSENT_KEY_FILE": str(logs / "consent.key")}
        argv = ["--consent-listen", f"{stack.HOST}:{consent_port}"]
        with _gateway(logs, loop.upstream, ports, policy, audit, env, argv) as gateway:
            gateway.process.wait_for_port(consent_port)
            here = replace(loop, gateway=gateway, consent_url=consent_url, audience=audience,
                           policy_dir=policy, audit_file=audit)  # fmt: skip
            disks = Full(here, Disk(audit_mount), Disk(policy_mount))
            try:
                yield disks
            finally:
                disks.audit.free()
                disks.policy.free()


def _answer(here: Loop, browser: Browser, page: httpx.Response, answer: str) -> httpx.Response:
    data = {**form_fields(page.text), "answer": answer, "scope": "tool",
            "duration": durations(page.text)[0]}  # fmt: skip
    return browser.go("POST", f"{here.consent_url}/consent/answer", data=data,
                      headers={"Origin": here.consent_url})  # fmt: skip


def _answers(here: Loop, request_id: str) -> list[str]:
    return [
        r["answer"]
        for r in here.gateway.records()
        if r.get("type") == "consent" and r.get("request") == request_id
    ]


def test_an_approval_that_cannot_be_recorded_makes_no_grant(full: Full) -> None:
    here = full.here
    url, request_id = denied_with_link(here, "/data/alice/unrecorded.txt")
    grant = here.policy_dir / f"consent-{request_id.lower()}.yaml"
    with Browser() as browser:
        page = browser.sign_in(url, ALICE)
        full.fill_audit()
        try:
            approved = _answer(here, browser, page, "approve")
            assert not grant.exists()  # no grant without its record
            assert approved.status_code == 503, approved.text[:2000]
            assert "could not be recorded, so no grant was made" in approved.text
            refused = _answer(here, browser, page, "refuse")
            assert refused.status_code == 503, refused.text[:2000]
            assert "Your refusal could not be recorded" in refused.text
        finally:
            full.audit.free()
        assert _answers(here, request_id) == []
        # Room again: the same request is approved, its record on the chain, then its grant.
        approved = _answer(here, browser, page, "approve")
        assert approved.status_code == 200, approved.text[:2000]
        assert f"consent-{request_id.lower()}" in approved.text  # the grants page
        again = _answer(here, browser, page, "approve")  # answered: refused before a record
        assert again.status_code == 409, again.text[:2000]
        assert "already exists" in again.text
    assert grant.exists()
    assert _answers(here, request_id) == ["approved"]


def test_a_revocation_that_cannot_be_recorded_still_revokes(full: Full) -> None:
    here = full.here
    url, request_id = denied_with_link(here, "/data/alice/revoked-unrecorded.txt")
    name = f"consent-{request_id.lower()}"
    with Browser() as browser:
        page = browser.sign_in(url, ALICE)
        assert _answer(here, browser, page, "approve").status_code == 200
        grants = browser.go("GET", f"{here.consent_url}/grants")
        data: dict[str, Any] = {"csrf": form_fields(grants.text)["csrf"],
                                "namespace": "agents", "name": name}  # fmt: skip
        full.fill_audit()
        try:
            revoked = browser.go("POST", f"{here.consent_url}/grants/revoke", data=data,
                                 headers={"Origin": here.consent_url})  # fmt: skip
        finally:
            full.audit.free()
    assert revoked.status_code == 503, revoked.text[:2000]
    assert f"Grant agents/{name} is revoked" in revoked.text
    assert "could not be recorded" in revoked.text
    text = (here.policy_dir / f"{name}.yaml").read_text()
    assert "revoked: true" in text  # in force: the gateway stops allowing under it
    assert f"revokedBy: {ALICE}" in text
    assert _answers(here, request_id) == ["approved"]  # the revocation is not on the chain


def test_an_approval_recorded_whose_grant_cannot_be_written_is_recorded_failed(
    full: Full,
) -> None:
    here = full.here
    url, request_id = denied_with_link(here, "/data/alice/unwritten.txt")
    with Browser() as browser:
        page = browser.sign_in(url, ALICE)
        full.policy.fill()  # the grant's file finds no room; the audit log has some
        try:
            approved = _answer(here, browser, page, "approve")
        finally:
            full.policy.free()
    assert approved.status_code == 503, approved.text[:2000]  # a storage failure, not a conflict
    assert "cannot write" in approved.text
    assert not (here.policy_dir / f"consent-{request_id.lower()}.yaml").exists()
    # The approval went on the chain first; the second record says it made no grant, and which.
    assert _answers(here, request_id) == ["approved", "failed"]
    approval, failed = [r for r in here.gateway.records() if r.get("request") == request_id]
    assert failed["cancels"] == approval["id"]
    assert failed["expiresAt"] == approval["expiresAt"]
    explained = explain(here.audit_file, request_id).text
    said = f"{ALICE} (logged in at {here.issuer.issuer}) approved, but no grant was written for,"
    assert f"{said} consent request {request_id}" in explained
    assert f"cancelling approval record {approval['id']})." in explained
