"""The access review: for each MCPServer, which agents may act for whom, by which rules, under
which active grants, granted by whom, until when.

Compliance teams run it periodically (``remit access review``, and the consent service's
administrator page). One row per rule of each AgentPolicy that governs the server, then one
row per ConsentGrant Active now for it; expired and revoked grants are left out (they grant
nothing), and counted in the JSON form of the CLI.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime

from remit.api.agentpolicy import AgentPolicy
from remit.api.common import Resource
from remit.api.consentgrant import ConsentGrant
from remit.api.mcpserver import MCPServer
from remit.policy.compiler import applies_to, grant_for
from remit.times import utc_text

COLUMNS = (
    "server",
    "kind",
    "source",
    "effect",
    "agents",
    "subjects",
    "targets",
    "consent",
    "grantedBy",
    "expires",
    "evidence",
)


@dataclass(frozen=True, slots=True)
class ReviewRow:
    """One line of the review."""

    server: str
    kind: str  # rule | grant
    source: str  # namespace/policy#rule, or namespace/grant
    effect: str
    agents: str
    subjects: str
    targets: str
    consent: str
    granted_by: str = ""
    expires: str = ""
    evidence: str = ""

    def flat(self) -> dict[str, str]:
        """The row with the column names of ``COLUMNS``."""
        row = asdict(self)
        row["grantedBy"] = row.pop("granted_by")
        return row


def _targets(tools: Iterable[str], resources: Iterable[str], prompts: Iterable[str]) -> str:
    parts = [f"tool:{t}" for t in tools] + [f"resource:{r}" for r in resources]
    return ", ".join(parts + [f"prompt:{p}" for p in prompts])


def review(resources: Iterable[Resource], now: datetime) -> list[ReviewRow]:
    """The review rows for every MCPServer in ``resources``, sorted by server."""
    resources = list(resources)
    servers = sorted((r for r in resources if isinstance(r, MCPServer)), key=lambda s: s.ref)
    policies = sorted((r for r in resources if isinstance(r, AgentPolicy)), key=lambda p: p.ref)
    grants = sorted((r for r in resources if isinstance(r, ConsentGrant)), key=lambda g: g.ref)
    rows: list[ReviewRow] = []
    for server in servers:
        for policy in policies:
            if not applies_to(policy, server):
                continue
            subjects = policy.spec.subjects
            who = "anyone"
            if subjects is not None:
                who = ", ".join([*subjects.users, *(f"group:{g}" for g in subjects.groups)])
            for rule in policy.spec.rules:
                consent = "required" if rule.require_consent else "-"
                if rule.require_consent:
                    consent += f" (at most {rule.consent_max_duration or '1d'})"
                rows.append(
                    ReviewRow(
                        server=server.ref,
                        kind="rule",
                        source=f"{policy.ref}#{rule.name}",
                        effect=rule.effect + (f" when {rule.when}" if rule.when else ""),
                        agents=", ".join(policy.spec.agents),
                        subjects=who,
                        targets=_targets(rule.tools, rule.resources, rule.prompts),
                        consent=consent,
                    )
                )
        for grant in grants:
            if not grant_for(grant, server) or grant.phase(now) != "Active":
                continue
            spec = grant.spec
            evidence = ""
            if spec.evidence is not None:
                e = spec.evidence
                evidence = (
                    f"{e.method}: {e.subject} at {e.issuer}, {utc_text(e.consented_at)}, "
                    f"scope {e.scope}, request {e.request}"
                )
            rows.append(
                ReviewRow(
                    server=server.ref,
                    kind="grant",
                    source=grant.ref,
                    effect="Allow" + (f" when {spec.when}" if spec.when else ""),
                    agents=spec.agent,
                    subjects=spec.subject,
                    targets=_targets(spec.tools, spec.resources, spec.prompts),
                    consent="granted",
                    granted_by=spec.granted_by,
                    expires=utc_text(spec.expires_at),
                    evidence=evidence,
                )
            )
    return rows


__all__ = ["COLUMNS", "ReviewRow", "review"]
