"""Write the frozen v1 fixtures (``v1/``): run ONCE, with the code of the release they stand for.

    .venv/bin/python -m tests.dataplane.compat.make_v1

``v1/`` was written by this script at commit cd3fc64 (bundle format 1, before the compatibility
contract). It must not be regenerated: its point is that it was produced by *older* code. When
a later release changes the wire format, copy this script to ``make_vN.py`` and write ``vN/``
beside it with that release, so every supported older release keeps its fixtures.

No private key is kept: the tests verify with ``key.jwk`` (public) only.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import msgspec

from remit.audit.arguments import ArgumentEvidence
from remit.audit.lines import seal
from remit.audit.records import (
    GENESIS,
    ChainRecord,
    ConsentRecord,
    DecisionRecord,
    OutcomeRecord,
    RecordedEvidence,
    RecordedGrant,
)
from remit.policy.bundle import Bundle
from remit.policy.delta import build_delta
from remit.policy.engine import Engine
from remit.policy.signing import generate_key, public_key, sign, sign_delta
from tests.dataplane.compat.fixtures import ISSUED_AT, PINS, SERIAL, documents, requests
from tests.support.policies import bundle_for

HERE = Path(__file__).parent / "v1"


def _bundle(serial: int, **kwargs: bool) -> Bundle:
    built = bundle_for(*documents(**kwargs))
    issued = ISSUED_AT + timedelta(minutes=serial - SERIAL)
    update = {"tool_pins": PINS, "serial": serial, "issued_at": issued, "digest": ""}
    return built.model_copy(update=update).sealed()


def _decisions(bundle: Bundle) -> dict[str, object]:
    engine = Engine(bundle)
    return {name: engine.decide(request).document() for name, request in requests().items()}


def _id(n: int) -> str:
    """A record id as the gateway makes them (32 hex digits, time first)."""
    return f"018e0f3a5c00{n:020x}"


def _records() -> bytes:
    when = "2026-03-02T10:00:00.000Z"
    common = {"time": when, "server": "agents/files", "pod": "files-7d9f"}
    grant = RecordedGrant(
        name="agents/g1",
        uid="u1",
        resource_version="42",
        expires_at="2026-04-01T10:00:00Z",
        granted_by="alice@example.com",
        evidence=RecordedEvidence(
            method="ConsentPage",
            issuer="https://idp.example.com/realms/acme",
            subject="alice-sub",
            consented_at="2026-03-02T09:00:00Z",
            request="0" * 32,
            scope="tool",
        ),
    )
    decision = {
        "method": "tools/call",
        "tool_hash": "c" * 64,
        "subject": "alice@example.com",
        "issuer": "https://idp.example.com/realms/acme",
        "agent": "support-bot",
        "chain": ("orchestrator",),
        "session": "d" * 64,
        "scopes": ("mcp:tools",),
        "bundle": "e" * 64,
        "serial": SERIAL,
    }
    records = [
        ChainRecord(id=_id(1), start="genesis", message="", after="f" * 64, **common),
        DecisionRecord(
            id=_id(2),
            tool="write_file",
            decision="allow",
            reason="allowed_by_consent",
            message="allowed with consent",
            rules=("agents/support#write",),
            grant=grant,
            arguments=ArgumentEvidence(digest="a" * 64, values={"path": "/data/a"}),
            **decision,
            **common,
        ),
        OutcomeRecord(
            id=_id(3),
            decision_id=_id(2),
            outcome="ok",
            status=200,
            latency_ms=1.5,
            error=None,
            **common,
        ),
        DecisionRecord(
            id=_id(4),
            tool="delete_file",
            decision="deny",
            reason="denied_by_rule",
            message="denied by agents/support#no-delete",
            rules=("agents/support#no-delete",),
            grant=None,
            arguments=ArgumentEvidence(digest="b" * 64, key="k1"),
            count=3,
            source="10.0.0.7",
            **decision,
            **common,
        ),
        ConsentRecord(
            id=_id(5),
            request="0" * 32,
            answer="approved",
            subject="alice@example.com",
            agent="support-bot",
            tool="write_file",
            login_issuer="https://idp.example.com/realms/acme",
            login_subject="alice-sub",
            scope="tool",
            grant="agents/g1",
            expires_at="2026-04-01T10:00:00Z",
            **common,
        ),
        ChainRecord(
            id=_id(6),
            start="recover",
            message="write failed",
            after="0" * 64,
            lost=0,
            not_forwarded=(_id(7),),
            **common,
        ),
    ]
    out, prev = b"", GENESIS
    for built in records:
        record = built
        if isinstance(record, ChainRecord) and record.start == "recover":
            record = msgspec.structs.replace(record, after=prev)
        entry = seal(record, prev)
        out, prev = out + entry.line, entry.hash
    return out


def main() -> None:
    HERE.mkdir(exist_ok=True)
    key = generate_key()
    base = _bundle(SERIAL)
    target = _bundle(SERIAL + 1, revoke_g2=True, add_g4=True)
    delta = build_delta(base, target)
    assert delta is not None
    pub = json.dumps(public_key(key).as_dict(private=False), indent=2)
    (HERE / "key.jwk").write_text(pub + "\n")
    (HERE / "bundle.jws").write_text(sign(base, key) + "\n")
    (HERE / "delta.jws").write_text(sign_delta(delta, key) + "\n")
    decisions = {"base": _decisions(base), "delta": _decisions(target)}
    digests = {"base": base.digest, "delta": target.digest}
    summary = {"digests": digests, "decisions": decisions}
    (HERE / "decisions.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    (HERE / "audit.log").write_bytes(_records())


if __name__ == "__main__":
    main()
