"""Sidecars too old for a bundle's fields, the parts: which later fields a bundle uses, what
sidecars say they know, who is too old, and the MCPServer status that names them. The whole
loop, with a real operator, a real sidecar and a format-1 one, is in test_bundle_refusal.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from remit.policy.bundle import BUNDLE_WIRE
from remit_operator.bundlefields import BundleFields, describe
from remit_operator.index import Sidecar as IndexedSidecar
from remit_operator.push import PushResult, _fields
from remit_operator.status import ServerReport, server_status
from tests.support.policies import bundle_for

pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
FIELD = "ServerSettings.agentClaims"


def test_the_wire_form_names_the_later_fields_a_bundle_uses() -> None:
    plain = bundle_for()
    assert BUNDLE_WIRE.used(plain) == frozenset()
    server = plain.server.model_copy(update={"agent_claims": ("client_id",)})
    assert BUNDLE_WIRE.used(plain.model_copy(update={"server": server})) == {FIELD}


def test_a_sidecars_bundle_fields_are_bounded_and_absent_means_format_1() -> None:
    assert _fields(None) == frozenset()
    assert _fields({"ServerSettings.agentClaims": True}) == frozenset()
    assert _fields([FIELD, 7, "", "x" * 129, "é"]) == {FIELD}
    assert len(_fields([f"f{n}" for n in range(10_000)])) == 256


def _sidecar(pod: str, incarnation: str = "1") -> IndexedSidecar:
    return IndexedSidecar(pod, "agents/files", "127.0.0.1", True, True, None, incarnation)


def test_a_sidecar_is_too_old_only_for_fields_its_current_process_lacks() -> None:
    fields = BundleFields()
    old, new, silent = _sidecar("agents/a"), _sidecar("agents/b"), _sidecar("agents/c")
    fields.note(PushResult(old, fields=frozenset()))
    fields.note(PushResult(new, fields=frozenset({FIELD})))
    fields.note(PushResult(silent, error="status: HTTP 503", fields=frozenset()))
    assert fields.unknown([old, new, silent]) == [silent]  # asked again; never assumed
    uses = frozenset({FIELD})
    assert fields.too_old([old, new, silent], uses) == (("agents/a", (FIELD,)),)
    assert fields.too_old([old, new, silent], frozenset()) == ()
    assert fields.to_warn([old], fields.too_old([old], uses)) == (("agents/a", (FIELD,)),)
    assert fields.to_warn([old], fields.too_old([old], uses)) == ()  # once
    restarted = _sidecar("agents/a", "2")
    assert fields.too_old([restarted], uses) == ()  # not known yet: asked, not blamed
    assert fields.unknown([restarted]) == [restarted]
    fields.note(PushResult(restarted, fields=frozenset({FIELD})))
    assert fields.too_old([restarted], uses) == ()


def test_status_says_sidecars_too_old_before_the_refusals_and_clears() -> None:
    now = datetime(2026, 12, 2, tzinfo=UTC)
    body: dict[str, Any] = {"metadata": {"generation": 3}}
    too_old = describe(tuple((f"agents/p{n}", (FIELD,)) for n in range(12)))
    failed = ServerReport("d", 1, 12, 12, 0, {}, failed=("agents/p0: push: HTTP 400",))
    report = ServerReport("d", 1, 12, 12, 0, {}, failed=failed.failed, too_old=too_old)
    condition = server_status(body, report, now)["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("False", "SidecarsTooOld")
    assert condition["message"].startswith("12 sidecar(s) too old for this bundle: bundle ")
    assert "agents/p9 and 2 more" in condition["message"]
    assert condition["message"].endswith("; 1 did not take it: agents/p0: push: HTTP 400")
    cleared = ServerReport("d", 1, 12, 12, 12, {})
    assert server_status(body, cleared, now)["conditions"][0]["reason"] == "InSync"
