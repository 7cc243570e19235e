"""The requests and bundle inputs behind the frozen v1 fixtures in ``v1/``.

``make_v1.py`` wrote ``v1/`` with the code of release format 1 (commit cd3fc64, before the
compatibility contract): a bundle, a delta and a decision log signed or sealed by *that* code,
plus the decisions *that* engine made. The tests in this package load them with the current
code. The inputs live here so the tests can compile the same resources with today's compiler.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from remit.policy.bundle import Bundle
from remit.policy.request import Request
from tests.support.policies import (
    EARLIER,
    LATER,
    NOW,
    bundle_for,
    call,
    grant,
    policy,
    rule,
    server,
    who,
)

SERIAL = 5
ISSUED_AT = NOW - timedelta(minutes=5)
PINS = {"read_file": "a" * 64, "write_file": "b" * 64}


def _evidence(request: str) -> dict[str, Any]:
    return {
        "issuer": "https://idp.example.com/realms/acme",
        "subject": "alice-sub",
        "consentedAt": (NOW - timedelta(hours=1)).isoformat(),
        "request": request,
        "scope": "tool",
    }


def documents(*, revoke_g2: bool = False, add_g4: bool = False) -> list[dict[str, Any]]:
    """Resources using most bundle features: group claims, limits, hosts, consent rules with
    a maximum, rate limits, annotations, CEL, grants with evidence, ended grants."""
    mcp = server(
        authentication={
            "issuer": "https://idp.example.com/realms/acme",
            "audience": "https://files.example.com/mcp",
            "requiredScopes": ["mcp:tools"],
            "groupClaims": [{"claim": "groups"}, {"claim": "realm_access.roles", "prefix": "kc:"}],
            "jwksCacheSeconds": 120,
        },
        gateway={
            "limits": {"maxResponseBytes": 1048576, "maxJsonDepth": 32},
            "allowedHosts": ["files.example.com"],
            "allowedOrigins": ["https://app.example.com"],
        },
    )
    docs = [
        mcp,
        policy(
            "support",
            rule("read", tools=["read_*"], annotations={"readOnlyHint": True}),
            rule(
                "write",
                tools=["write_file"],
                when="args.path.startsWith('/data/')",
                consent=True,
                rate_limit={"calls": 10, "per": "1m"},
            ),
            rule("no-delete", "Deny", tools=["delete_*"]),
            rule("docs", resources=["file:///docs/*"]),
            groups=["kc:support"],
        ),
        policy("anyone", rule("prompt", prompts=["summary"])),
        grant("g1", tools=("write_file",)),
        grant("g2", subject="bob@example.com", tools=("write_file",), revoked=revoke_g2),
        grant("g3", expires_at=EARLIER, tools=("write_file",)),
    ]
    docs[1]["spec"]["rules"][1]["consentMaxDuration"] = "8h"
    docs[-3]["spec"]["evidence"] = {**_evidence("0" * 32), "method": "ConsentPage"}
    if add_g4:
        docs.append(grant("g4", subject="carol@example.com", tools=("write_*",), expires_at=LATER))
    return docs


def requests() -> dict[str, Request]:
    """Requests whose decisions the v1 engine recorded (``v1/decisions.json``)."""
    support = {"groups": ["kc:support"]}
    return {
        "read": call("read_file", identity=who(groups=support["groups"])),
        "read-no-group": call("read_file"),
        "write-alice": call(
            "write_file",
            {"path": "/data/a"},
            identity=who(groups=support["groups"]),
            annotations={},
        ),
        "write-bob": call(
            "write_file",
            {"path": "/data/b"},
            identity=who("bob@example.com", groups=support["groups"]),
            annotations={},
        ),
        "write-carol": call(
            "write_file",
            {"path": "/data/c"},
            identity=who("carol@example.com", groups=support["groups"]),
            annotations={},
        ),
        "write-outside": call(
            "write_file", {"path": "/etc/x"}, identity=who(groups=support["groups"])
        ),
        "delete": call("delete_file", identity=who(groups=support["groups"])),
        "doc": call(
            "file:///docs/a.md", method="resources/read", identity=who(groups=support["groups"])
        ),
        "prompt": call("summary", method="prompts/get"),
        "unknown": call("format_disk", identity=who(groups=support["groups"])),
    }


def compiled(serial: int = SERIAL, **changes: bool) -> Bundle:
    """The fixture's resources compiled by the code running now, sealed as ``make_v1`` did."""
    issued = ISSUED_AT + timedelta(minutes=serial - SERIAL)
    update = {"tool_pins": PINS, "serial": serial, "issued_at": issued, "digest": ""}
    return bundle_for(*documents(**changes)).model_copy(update=update).sealed()
