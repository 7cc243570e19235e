"""Lookups built once per bundle so a decision never scans unrelated rules or grants.

Rules are indexed by target kind and name (exact names in a dict, globs in a list), and the
rules that apply to one (agent, target, name) are cached; grants are indexed by
(subject, agent). Decision time therefore does not grow with the number of policies, rules
or grants that concern other agents, tools or humans.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase, translate
from functools import lru_cache
from typing import Any

from remit.errors import BundleError
from remit.policy.bundle import Bundle, CompiledGrant, CompiledPolicy, CompiledRule, TargetKind
from remit.policy.expressions import Condition, compile_condition

_GLOB_CHARS = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    """Whether ``pattern`` uses glob syntax (``*``, ``?``, ``[...]``)."""
    return any(c in _GLOB_CHARS for c in pattern)


class Matcher:
    """Match a string against several globs: a set lookup for exact ones, one regex for the rest."""

    __slots__ = ("_exact", "_regex")

    def __init__(self, patterns: Iterable[str]) -> None:
        patterns = list(patterns)
        self._exact = frozenset(p for p in patterns if not is_glob(p))
        globs = [translate(p) for p in patterns if is_glob(p)]
        self._regex = re.compile("|".join(f"(?:{g})" for g in globs)) if globs else None

    def __call__(self, value: str) -> bool:
        if value in self._exact:
            return True
        return self._regex is not None and self._regex.match(value) is not None


@dataclass(frozen=True, slots=True)
class PolicyEntry:
    """A compiled policy with its subject matchers."""

    policy: CompiledPolicy
    agents: Matcher
    users: Matcher | None
    groups: frozenset[str] | None

    def covers_subject(self, subject: str, groups: Iterable[str]) -> bool:
        """Whether the human is one this policy acts for (omitted subjects: anyone)."""
        if self.users is None and self.groups is None:
            return True
        if self.users is not None and self.users(subject):
            return True
        return self.groups is not None and not self.groups.isdisjoint(groups)


@dataclass(frozen=True, slots=True)
class RuleEntry:
    """A compiled rule with its policy and its condition."""

    rule: CompiledRule
    policy: PolicyEntry
    condition: Condition | None

    def hints_hold(self, hints: Mapping[str, bool]) -> bool:
        """Whether the tool's effective annotation hints are those the rule asks for."""
        return all(hints.get(k) == v for k, v in self.rule.annotations.items())


@dataclass(frozen=True, slots=True)
class GrantEntry:
    """A compiled grant with its target matchers (shared between grants) and condition."""

    grant: CompiledGrant
    tools: Matcher
    resources: Matcher
    prompts: Matcher
    condition: Condition | None

    def covers(self, target: TargetKind, name: str) -> bool:
        """Whether the grant names this tool, resource or prompt."""
        if target == "tool":
            return self.tools(name)
        return (self.resources if target == "resource" else self.prompts)(name)


# Names come from callers (a tool name or resource URI, up to the body limit): a cache keeps
# only keys of at most this many characters, so 8,192 entries cannot pin gigabytes; a longer
# key is looked up uncached (same answer, a little slower).
CACHE_KEY_CHARS = 1024


class RuleIndex:
    """Rules by (target, name), resolved per agent and cached."""

    def __init__(self, bundle: Bundle, cache_size: int = 8192) -> None:
        self._exact: dict[tuple[str, str], list[RuleEntry]] = {}
        self._globs: dict[str, list[tuple[str, RuleEntry]]] = {}
        for policy in bundle.policies:
            entry = _policy_entry(policy)
            for rule in policy.rules:
                item = RuleEntry(rule, entry, _condition(rule.when))
                for pattern in rule.patterns:
                    if is_glob(pattern):
                        self._globs.setdefault(rule.target, []).append((pattern, item))
                    else:
                        self._exact.setdefault((rule.target, pattern), []).append(item)
        self._cached = lru_cache(maxsize=cache_size)(self._lookup)

    def lookup(self, agent: str, target: str, name: str) -> tuple[RuleEntry, ...]:
        """Rules for this agent and name (cached unless the key is long: see CACHE_KEY_CHARS)."""
        if len(agent) + len(name) <= CACHE_KEY_CHARS:
            return self._cached(agent, target, name)
        return self._lookup(agent, target, name)

    def _lookup(self, agent: str, target: str, name: str) -> tuple[RuleEntry, ...]:
        """Rules for this agent and name, Deny rules first, each rule once, in bundle order."""
        found = list(self._exact.get((target, name), ()))
        found += [e for p, e in self._globs.get(target, ()) if fnmatchcase(name, p)]
        unique: dict[str, RuleEntry] = {}
        for entry in found:
            if entry.policy.agents(agent):
                unique.setdefault(entry.rule.id, entry)
        ordered = sorted(unique.values(), key=lambda e: e.rule.effect != "Deny")
        return tuple(ordered)


class GrantIndex:
    """Active grants by (subject, agent).

    Grants repeat the same tool lists (thousands of humans consent to ``write_file``), so
    matchers are shared per distinct pattern list rather than built per grant.
    """

    def __init__(self, grants: Iterable[CompiledGrant]) -> None:
        self._by_pair: dict[tuple[str, str], list[GrantEntry]] = {}
        matchers: dict[tuple[str, ...], Matcher] = {}

        def matcher(patterns: tuple[str, ...]) -> Matcher:
            found = matchers.get(patterns)
            if found is None:
                found = matchers[patterns] = Matcher(patterns)
            return found

        for grant in grants:
            entry = GrantEntry(
                grant,
                matcher(grant.tools),
                matcher(grant.resources),
                matcher(grant.prompts),
                _condition(grant.when, deferred=True),
            )
            self._by_pair.setdefault((grant.subject, grant.agent), []).append(entry)

    def lookup(self, subject: str, agent: str) -> list[GrantEntry]:
        """Grants this human gave this agent."""
        return self._by_pair.get((subject, agent), [])


def _policy_entry(policy: CompiledPolicy) -> PolicyEntry:
    return PolicyEntry(
        policy=policy,
        agents=Matcher(policy.agents),
        users=Matcher(policy.users) if policy.users is not None else None,
        groups=frozenset(policy.groups) if policy.groups is not None else None,
    )


def _condition(source: str | None, *, deferred: bool = False) -> Condition | None:
    """Check ``source`` now (a bundle with a bad condition is refused whole); keep the program
    unless ``deferred`` (then it compiles again on first use)."""
    if not source:
        return None
    try:
        condition = compile_condition(source)
    except ValueError as exc:  # a bundle that is signed but not valid: refuse it, as a bundle
        raise BundleError(f"bundle condition {source!r} does not compile: {exc}") from exc
    return condition.deferred() if deferred else condition


def effective_hints(annotations: Mapping[str, Any]) -> dict[str, bool]:
    """Tool hints with the MCP specification's defaults for undeclared ones.

    readOnlyHint defaults to false; destructiveHint to true and idempotentHint to false, both
    meaningful only for tools that are not read-only; openWorldHint defaults to true. So a
    tool that declares nothing is treated as possibly destructive: rules fail closed.
    """
    read_only = annotations.get("readOnlyHint") is True
    return {
        "readOnlyHint": read_only,
        "destructiveHint": False if read_only else annotations.get("destructiveHint") is not False,
        "idempotentHint": True if read_only else annotations.get("idempotentHint") is True,
        "openWorldHint": annotations.get("openWorldHint") is not False,
    }
