"""Bounded metric labels: agents and tools the bundle in force names; anything else is ``other``.

Callers choose agent names (a token's ``azp``) and tool names (a request's ``params.name``), so
labelling series by them directly would let any caller create series without end. A label takes
its value only when the bundle names it exactly (an AgentPolicy's ``agents``, a grant's agent,
a rule's or grant's literal tool, resource or prompt name, a tool pin); a glob matches no
single name, so names it covers count as ``other``. Series are therefore bounded by what the
cluster's own policies say, not by traffic.
"""

from __future__ import annotations

from dataclasses import dataclass

from remit.policy.bundle import Bundle

OTHER = "other"
NONE = "none"  # a record naming no agent (unauthenticated) or no target (tools/list)
_GLOB = frozenset("*?[")


def _literal(name: str) -> bool:
    return bool(name) and not (_GLOB & set(name))


@dataclass(frozen=True, slots=True)
class KnownNames:
    """The agent and target names one bundle makes label values."""

    digest: str
    agents: frozenset[str]
    targets: frozenset[str]

    @classmethod
    def of(cls, bundle: Bundle) -> KnownNames:
        """Collect the literal names ``bundle`` uses."""
        agents: set[str] = set()
        targets: set[str] = set(bundle.tool_pins)
        for policy in bundle.policies:
            agents.update(policy.agents)
            for rule in policy.rules:
                targets.update(rule.patterns)
        for grant in bundle.grants:
            agents.add(grant.agent)
            targets.update((*grant.tools, *grant.resources, *grant.prompts))
        return cls(
            bundle.digest,
            frozenset(filter(_literal, agents)),
            frozenset(filter(_literal, targets)),
        )

    def agent(self, name: str) -> str:
        """The label value for agent ``name``."""
        if not name:
            return NONE
        return name if name in self.agents else OTHER

    def target(self, name: str) -> str:
        """The label value for tool, resource or prompt ``name``."""
        if not name:
            return NONE
        return name if name in self.targets else OTHER


class LabelCache:
    """``KnownNames`` of the bundle in force, rebuilt only when the bundle changes."""

    def __init__(self) -> None:
        self._known: KnownNames | None = None

    def names(self, bundle: Bundle | None) -> KnownNames | None:
        """The names of ``bundle`` (None without one: every name is then ``other``)."""
        if bundle is None:
            return None
        known = self._known
        if known is None or known.digest != bundle.digest:
            known = self._known = KnownNames.of(bundle)
        return known


__all__ = ["NONE", "OTHER", "KnownNames", "LabelCache"]
