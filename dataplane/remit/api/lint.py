"""Mistakes that are valid YAML and valid resources, yet cannot do what their author meant.

A policy naming a server that does not exist, a glob that can never match (``search_[a-``), a
``when`` that is not boolean, a grant that was already expired when it was applied: each loads,
and each would otherwise pass in silence (a rule that never applies, an expression that denies
every call at run time). ``remit validate`` prints them as warnings (``--strict`` fails on
them); the operator reports them as a ``Warnings`` condition and a Warning event. Validity
proper (schema, CEL syntax, duplicates) stays in the models and ``remit.api.loader``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase

from remit.api.agentpolicy import AgentPolicy
from remit.api.common import Resource
from remit.api.consentgrant import ConsentGrant
from remit.api.mcpserver import MCPServer
from remit.celcheck import non_boolean
from remit.times import utc_text

# Names a glob is matched against, where they have a fixed alphabet: MCPServer names are DNS
# labels; tool names are A-Z, a-z, 0-9, "_", "-" and "." (MCP specification, 2025-11-25).
SERVER_NAME = re.compile(r"[a-z0-9-]")
TOOL_NAME = re.compile(r"[A-Za-z0-9_.-]")


@dataclass(frozen=True, slots=True)
class Finding:
    """One warning: which resource (and the file it came from), which field, what is wrong."""

    kind: str
    ref: str
    field: str
    message: str
    reason: str
    source: str = ""

    def __str__(self) -> str:
        parts = [self.source, f"{self.kind} {self.ref}".strip(), self.field, self.message]
        return ": ".join(p for p in parts if p)


def glob_problem(pattern: str, alphabet: re.Pattern[str] | None = None) -> str | None:
    """Why ``pattern`` (an fnmatch glob) is malformed or can never match, or None."""
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char in "*?":
            index += 1
            continue
        if char == "[":
            end = index + 1
            if end < len(pattern) and pattern[end] == "!":
                end += 1
            if end < len(pattern) and pattern[end] == "]":
                end += 1
            while end < len(pattern) and pattern[end] != "]":
                end += 1
            if end >= len(pattern):
                return (
                    f"malformed glob {pattern!r}: the '[' at position {index + 1} is never "
                    f"closed, so it matches only the literal name {pattern!r}"
                )
            if not _class_matches(pattern[index + 1 : end]):
                return f"the glob {pattern!r} can never match: {pattern[index : end + 1]} is empty"
            index = end + 1
            continue
        if alphabet is not None and not alphabet.fullmatch(char):
            return f"the glob {pattern!r} can never match: names cannot contain {char!r}"
        index += 1
    return None


def _class_matches(body: str) -> bool:
    """Whether a bracket class (without its brackets) admits at least one character."""
    negated = body.startswith("!")
    chars = body[1:] if negated else body
    ranges = [(chars[i], chars[i + 2]) for i in range(len(chars) - 2) if chars[i + 1] == "-"]
    if ranges and all(low > high for low, high in ranges) and len(chars) == 3 * len(ranges):
        return negated  # only reversed ranges: empty, unless negated
    return True


def _globs(field: str, patterns: Sequence[str], alphabet: re.Pattern[str] | None) -> list[str]:
    out = []
    for index, pattern in enumerate(patterns):
        problem = glob_problem(pattern, alphabet)
        if problem:
            out.append(f"{field}[{index}]\x00{problem}")
    return out


def _when(field: str, source: str | None) -> list[str]:
    problem = non_boolean(source) if source else None
    if problem:
        return [
            f"{field}\x00{source!r} is not a boolean condition: {problem}; it fails at run "
            "time and every call it decides is denied (expression_error)"
        ]
    return []


def _server_missing(
    field: str, patterns: Sequence[str], namespace: str, servers: Iterable[str] | None
) -> list[str]:
    if servers is None:
        return []
    known = sorted(servers)
    if any(fnmatchcase(name, p) for name in known for p in patterns):
        return []
    there = f"(there: {', '.join(known)})" if known else "(none there)"
    return [
        f"{field}\x00names no MCPServer in namespace {namespace!r} {there}: "
        f"{', '.join(patterns)} — it applies to nothing until one exists"
    ]


def findings(
    resource: Resource,
    *,
    servers: Iterable[str] | None,
    applied_at: datetime | None,
    source: str = "",
    applied: str = "now",
) -> list[Finding]:
    """Warnings for one resource.

    ``servers``: the MCPServer names of the resource's namespace (None: unknown, not checked).
    ``applied_at``: when the resource was applied (a grant already expired then is flagged),
    ``applied`` what that time is, in words (``now``, ``at its creation``).
    """
    found: list[tuple[str, str]] = []  # (reason, "field\0message")
    if isinstance(resource, AgentPolicy):
        spec = resource.spec
        found += [("NoServer", m) for m in _server_missing(
            "spec.servers", spec.servers, resource.metadata.namespace, servers)]  # fmt: skip
        found += [("Glob", m) for m in _globs("spec.servers", spec.servers, SERVER_NAME)]
        found += [("Glob", m) for m in _globs("spec.agents", spec.agents, None)]
        if spec.subjects is not None:
            found += [("Glob", m) for m in _globs("spec.subjects.users", spec.subjects.users, None)]
        for index, rule in enumerate(spec.rules):
            at = f"spec.rules[{index}]"
            found += [("Glob", m) for m in _globs(f"{at}.tools", rule.tools, TOOL_NAME)]
            found += [("Glob", m) for m in _globs(f"{at}.resources", rule.resources, None)]
            found += [("Glob", m) for m in _globs(f"{at}.prompts", rule.prompts, None)]
            found += [("NotBoolean", m) for m in _when(f"{at}.when", rule.when)]
    elif isinstance(resource, ConsentGrant):
        grant = resource.spec
        found += [("NoServer", m) for m in _server_missing(
            "spec.server", [grant.server], resource.metadata.namespace, servers)]  # fmt: skip
        found += [("Glob", m) for m in _globs("spec.tools", grant.tools, TOOL_NAME)]
        found += [("Glob", m) for m in _globs("spec.resources", grant.resources, None)]
        found += [("Glob", m) for m in _globs("spec.prompts", grant.prompts, None)]
        found += [("NotBoolean", m) for m in _when("spec.when", grant.when)]
        if applied_at is not None and not grant.revoked and grant.expires_at <= applied_at:
            found.append(
                (
                    "ExpiredWhenApplied",
                    f"spec.expiresAt\x00already expired: expiresAt "
                    f"{utc_text(grant.expires_at, 'seconds')} is not after {applied} "
                    f"({utc_text(applied_at, 'seconds')}); it grants nothing",
                )
            )
    out = []
    for reason, text in found:
        field, _, message = text.partition("\x00")
        out.append(Finding(resource.KIND, resource.ref, field, message, reason, source))
    return out


def lint(
    resources: Sequence[Resource], *, now: datetime, sources: dict[tuple[str, str], str]
) -> list[Finding]:
    """Warnings for a set of resources loaded together (``remit validate``)."""
    by_namespace: dict[str, set[str]] = {}
    for resource in resources:
        if isinstance(resource, MCPServer):
            by_namespace.setdefault(resource.metadata.namespace, set()).add(resource.metadata.name)
    out: list[Finding] = []
    for resource in resources:
        out += findings(
            resource,
            servers=by_namespace.get(resource.metadata.namespace, set()),
            applied_at=now,
            source=sources.get((resource.KIND, resource.ref), ""),
        )
    return out
