"""Decide MCP requests against a bundle: deny overrides, consent via grants, default deny.

For each request: the policies whose agents and subjects match (the servers matched at compile
time) contribute their rules for the tool, resource or prompt. Any matching Deny denies. An
expression error denies. Else an Allow without ``requireConsent`` allows; else an Allow with
``requireConsent`` allows only with an Active grant for (subject, agent, target) whose own
condition holds. Nothing matched: deny.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from remit.errors import EvaluationError
from remit.policy.bundle import Bundle, TargetKind
from remit.policy.decision import Decision, GrantRef, RateLimitRef, Reason, deny
from remit.policy.ended import is_revoked
from remit.policy.expressions import Bindings
from remit.policy.index import (
    CACHE_KEY_CHARS,
    GrantIndex,
    RuleEntry,
    RuleIndex,
    effective_hints,
)
from remit.policy.methods import DECIDED, LISTS, REFERENCING, classify
from remit.policy.request import Identity, Request
from remit.times import utc_text

_NOUN = {"tool": "tool", "resource": "resource", "prompt": "prompt"}
_CACHE_SIZE = 8192  # (agent, human, target, hints) whose applicable rules are kept per bundle
_DECISIONS_PER_PLAN = 16  # decisions kept per plan (one per set of rules that held)


class Engine:
    """Decisions for one bundle. Build once per bundle; ``decide`` is safe to call concurrently."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.digest = bundle.digest
        self._rules = RuleIndex(bundle)
        self._grants = GrantIndex(bundle.grants)
        self._server = {"name": bundle.server.name, "namespace": bundle.server.namespace}
        # (agent, subject, groups, target, name, hints) -> applicable rules, oldest first
        self._applicable_cache: dict[tuple[Any, ...], _Plan] = {}

    # -- deciding ---------------------------------------------------------------------------

    def decide(self, request: Request) -> Decision:
        """Decide one request. Never raises: every failure is a deny with a reason."""
        try:
            return self._decide(request)
        except Exception as exc:  # noqa: BLE001 - fail closed on anything unforeseen
            return deny(Reason.INTERNAL_ERROR, f"internal error while deciding: {exc}", self.digest)

    def _decide(self, request: Request) -> Decision:
        kind = classify(request.method)
        if kind == "lifecycle":
            message = f"{request.method} is a lifecycle method, allowed to authenticated callers"
            return Decision("allow", Reason.ALLOWED, message, self.digest)
        if kind == "list":
            message = f"{request.method} is allowed; results show only what the caller may use"
            return Decision("allow", Reason.ALLOWED, message, self.digest, filter_results=True)
        if kind == "unknown":
            return deny(
                Reason.METHOD_NOT_ALLOWED, f"method {request.method!r} is not allowed", self.digest
            )
        if request.method in REFERENCING:
            if request.kind not in ("prompt", "resource") or not request.name:
                text = f"{request.method} references no prompt or resource template"
                return deny(Reason.INVALID_REQUEST, text, self.digest)
            return self._decide_target(
                request, "prompt" if request.kind == "prompt" else "resource"
            )
        target = DECIDED[request.method]
        if not request.name:
            return deny(
                Reason.INVALID_REQUEST, f"{request.method} names no {_NOUN[target]}", self.digest
            )
        return self._decide_target(request, target)

    def _decide_target(self, request: Request, target: TargetKind) -> Decision:
        identity = request.identity
        hints = effective_hints(request.annotations) if target == "tool" else {}
        plan = self._plan(identity, target, request.name, hints)
        resolver = _Resolver(self, request, target, hints)
        bindings: Bindings | None = None  # made when a condition is first evaluated
        held = 0  # the plain Allow rules that hold, one bit per position in the plan
        consent: list[RuleEntry] = []
        for position, entry in enumerate(plan.entries):
            if entry.condition is not None:
                if bindings is None:
                    bindings = Bindings(resolver.resolve)
                try:
                    if not entry.condition.evaluate(bindings):
                        continue
                except EvaluationError as exc:
                    return deny(
                        Reason.EXPRESSION_ERROR,
                        f"rule {entry.rule.id}: condition failed: {exc}",
                        self.digest,
                        (entry.rule.id,),
                    )
            if entry.rule.effect == "Deny":  # Deny rules come first; one is enough
                return plan.decided(~position, request, target, self.digest)
            if entry.rule.require_consent:
                consent.append(entry)
            else:
                held |= 1 << position
        if held or not consent:  # a plain allow, or nothing matched
            return plan.decided(held, request, target, self.digest)
        bindings = bindings or Bindings(resolver.resolve)
        return self._decide_consent(request, target, consent, bindings, resolver.now())

    def _decide_consent(
        self,
        request: Request,
        target: TargetKind,
        rules: list[RuleEntry],
        bindings: Bindings,
        now: datetime,
    ) -> Decision:
        identity = request.identity
        ids = tuple(e.rule.id for e in rules)
        failure = ""
        expired: list[str] = []  # covering grants that ended: expired or revoked
        unmet: list[str] = []  # covering grants whose own condition did not hold
        for entry in self._grants.lookup(identity.subject, identity.agent):
            grant = entry.grant
            if not entry.covers(target, request.name):
                continue
            if grant.expires_at <= now:  # ended: expired, or revoked (remit.policy.ended)
                when = f"expired at {utc_text(grant.expires_at, 'seconds')}"
                expired.append(f"{grant.id} {'was revoked' if is_revoked(grant) else when}")
                continue
            if entry.condition is not None:
                try:
                    if not entry.condition.evaluate(bindings):
                        unmet.append(f"{grant.id} (when: {grant.when})")
                        continue
                except EvaluationError as exc:
                    failure = f"grant {grant.id}: condition failed: {exc}"
                    continue
            ref = GrantRef(
                grant.id,
                grant.uid,
                grant.resource_version,
                grant.expires_at,
                grant.granted_by,
                grant.reason,
                grant.evidence,
            )
            noun = f"{_NOUN[target]} {request.name!r}"
            message = f"{noun} allowed by rule {ids[0]} under consent {grant.id}"
            return Decision(
                "allow",
                Reason.ALLOWED,
                message,
                self.digest,
                ids,
                grant=ref,
                rate_limits=_limits(rules),
            )
        if failure:
            return deny(Reason.EXPRESSION_ERROR, failure, self.digest, ids)
        server = f"{self.bundle.server.namespace}/{self.bundle.server.name}"
        wanted = (
            f"lets agent {identity.agent!r} use {_NOUN[target]} {request.name!r} on server "
            f"{server} (rule {ids[0]})"
        )
        if unmet:
            message = (
                f"consent required: the condition of ConsentGrant {', '.join(unmet)} did not "
                f"hold for this call, and no other active grant of {identity.subject!r} {wanted}"
            )
        elif expired:
            message = (
                f"consent required: ConsentGrant {', '.join(expired)}, and no other active "
                f"grant of {identity.subject!r} {wanted}"
            )
        else:
            message = (
                f"consent required: {identity.subject!r} has no active ConsentGrant that {wanted}"
            )
        return deny(Reason.CONSENT_REQUIRED, message, self.digest, ids)

    def _applicable(
        self, identity: Identity, target: TargetKind, name: str, hints: Mapping[str, bool]
    ) -> tuple[RuleEntry, ...]:
        return self._plan(identity, target, name, hints).entries

    def _plan(
        self, identity: Identity, target: TargetKind, name: str, hints: Mapping[str, bool]
    ) -> _Plan:
        groups = tuple(identity.groups)  # tuple(): a caller's list of groups is still a key
        key = (identity.agent, identity.subject, groups, target, name, tuple(hints.items()))
        cache = self._applicable_cache
        found = cache.get(key)
        if found is None:
            found = _Plan(self._find_applicable(*key))
            # Only keys of ordinary size are kept (a name is the caller's, up to the body
            # limit): checked on a miss only, as a long key is never found.
            size = len(identity.agent) + len(identity.subject) + len(name)
            if size + sum(map(len, groups)) <= CACHE_KEY_CHARS:
                if len(cache) >= _CACHE_SIZE:
                    cache.pop(next(iter(cache)), None)  # the oldest entry
                cache[key] = found
        return found

    def _find_applicable(
        self, agent: str, subject: str, groups: tuple[str, ...], target: TargetKind, name: str,
        hints: tuple[tuple[str, bool], ...],
    ) -> tuple[RuleEntry, ...]:  # fmt: skip
        """The rules for this agent, human, target and tool hints (cached per bundle: the
        same callers call the same tools)."""
        wanted = dict(hints)
        return tuple(
            entry
            for entry in self._rules.lookup(agent, target, name)
            if entry.policy.covers_subject(subject, groups)
            and (not entry.rule.annotations or entry.hints_hold(wanted))
        )

    # -- visibility (list filtering) ----------------------------------------------------------

    def visible(
        self,
        identity: Identity,
        target: TargetKind,
        name: str,
        annotations: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Whether some call to this tool, resource or prompt could be allowed for ``identity``.

        A condition that reads ``args`` is assumed satisfiable (arguments are unknown until the
        call); one that does not is evaluated now, for this identity. An error counts as a
        matching Deny and a failing Allow (fail closed). A consent rule shows the target only
        while the human has a covering grant.
        """
        now = (now or datetime.now(UTC)).astimezone(UTC)
        hints = effective_hints(annotations or {}) if target == "tool" else {}
        request = Request(identity, "", name, {}, annotations or {}, now)
        bindings = Bindings(_Resolver(self, request, target, hints).resolve)
        possible = False
        for entry in self._applicable(identity, target, name, hints):
            holds = _holds_without_arguments(entry, bindings)
            if entry.rule.effect == "Deny":
                if holds is True:
                    return False
                continue
            if holds is False:
                continue
            if not entry.rule.require_consent or self._has_grant(identity, target, name, now):
                possible = True
        return possible

    def _has_grant(self, identity: Identity, target: TargetKind, name: str, now: datetime) -> bool:
        return any(
            e.grant.expires_at > now and e.covers(target, name)
            for e in self._grants.lookup(identity.subject, identity.agent)
        )

    def visible_tools(
        self,
        identity: Identity,
        tools: Iterable[Mapping[str, Any]],
        *,
        now: datetime | None = None,
    ) -> list[Mapping[str, Any]]:
        """The MCP tool definitions ``identity`` could call."""
        now = now or datetime.now(UTC)
        return [
            t
            for t in tools
            if self.visible(
                identity, "tool", str(t.get("name", "")), t.get("annotations") or {}, now
            )
        ]

    def visible_resources(
        self,
        identity: Identity,
        resources: Iterable[Mapping[str, Any]],
        *,
        now: datetime | None = None,
    ) -> list[Mapping[str, Any]]:
        """The MCP resources (``uri``, or ``uriTemplate`` for templates) ``identity`` may read."""
        now = now or datetime.now(UTC)
        return [
            r
            for r in resources
            if self.visible(
                identity, "resource", str(r.get("uri", r.get("uriTemplate", ""))), None, now
            )
        ]

    def visible_prompts(
        self,
        identity: Identity,
        prompts: Iterable[Mapping[str, Any]],
        *,
        now: datetime | None = None,
    ) -> list[Mapping[str, Any]]:
        """The MCP prompts ``identity`` could get."""
        now = now or datetime.now(UTC)
        return [
            p
            for p in prompts
            if self.visible(identity, "prompt", str(p.get("name", "")), None, now)
        ]

    def list_target(self, method: str) -> TargetKind | None:
        """The kind of item a list method returns, or None for other methods."""
        return LISTS.get(method)


class _Plan:
    """The rules that apply to one (agent, human, target, name, hints), oldest first, and the
    decisions they have produced that no grant took part in: a plain allow (by the Allow rules
    that held), a deny by rule, no matching rule. Each of these is a function of the plan's key
    and of which rules held, so it is made once and given again (``Decision`` is immutable)."""

    __slots__ = ("_decisions", "entries")

    def __init__(self, entries: tuple[RuleEntry, ...]) -> None:
        self.entries = entries
        self._decisions: dict[int, Decision] = {}

    def decided(self, outcome: int, request: Request, target: TargetKind, digest: str) -> Decision:
        """The decision for ``outcome``: ``~position`` of the Deny rule that held, else the bits
        of the plain Allow rules that held (0: no rule matched)."""
        found = self._decisions.get(outcome)
        if found is None:
            found = self._decision(outcome, request, target, digest)
            if len(self._decisions) < _DECISIONS_PER_PLAN:
                self._decisions[outcome] = found
        return found

    def _decision(
        self, outcome: int, request: Request, target: TargetKind, digest: str
    ) -> Decision:
        noun = f"{_NOUN[target]} {request.name!r}"
        if outcome < 0:
            rule = self.entries[~outcome].rule.id
            return deny(Reason.DENIED_BY_RULE, f"{noun} denied by rule {rule}", digest, (rule,))
        if outcome == 0:
            identity = request.identity
            return deny(
                Reason.NO_MATCHING_RULE,
                f"no rule allows agent {identity.agent!r} to use {noun} for {identity.subject!r}",
                digest,
            )
        plain = [e for position, e in enumerate(self.entries) if outcome >> position & 1]
        ids = tuple(e.rule.id for e in plain)
        return Decision(
            "allow",
            Reason.ALLOWED,
            f"{noun} allowed by rule {ids[0]}",
            digest,
            ids,
            rate_limits=_limits(plain),
        )


class _Resolver:
    """Produces each CEL variable of one request on demand (``now`` too: read once, when first
    needed)."""

    __slots__ = ("_engine", "_hints", "_now", "_request", "_target")

    def __init__(
        self,
        engine: Engine,
        request: Request,
        target: TargetKind,
        hints: Mapping[str, bool],
    ) -> None:
        self._engine = engine
        self._request = request
        self._target = target
        self._hints = hints
        self._now: datetime | None = None

    def now(self) -> datetime:
        """The time of the decision, in UTC (CEL reads timestamps in UTC: getHours() etc.),
        the same for every use within it."""
        if self._now is None:
            self._now = (self._request.now or datetime.now(UTC)).astimezone(UTC)
        return self._now

    def resolve(self, name: str) -> Any:
        request = self._request
        identity = request.identity
        if name == "args":
            return dict(request.arguments)
        if name == "subject":
            return {
                "id": identity.subject,
                "issuer": identity.issuer,
                "groups": list(identity.groups),
                "claims": dict(identity.claims),
            }
        if name == "agent":
            return {"id": identity.agent, "chain": list(identity.chain)}
        if name == "tool":
            name_ = request.name if self._target == "tool" else ""
            return {"name": name_, "annotations": {**request.annotations, **self._hints}}
        if name == "resource":
            return {"uri": request.name if self._target == "resource" else ""}
        if name == "prompt":
            return {"name": request.name if self._target == "prompt" else ""}
        if name == "server":
            return self._engine._server
        if name == "now":
            return self.now()
        raise EvaluationError(f"unknown variable {name!r}")


def _holds_without_arguments(entry: RuleEntry, bindings: Bindings) -> bool | None:
    """The rule's condition for this identity: True/False, or None if it needs arguments.

    No condition is True; an evaluation error is True for a Deny and False for an Allow.
    """
    condition = entry.condition
    if condition is None:
        return True
    if "args" in condition.variables:
        return None
    try:
        return condition.evaluate(bindings)
    except EvaluationError:
        return entry.rule.effect == "Deny"


def _limits(entries: Iterable[RuleEntry]) -> tuple[RateLimitRef, ...]:
    return tuple(RateLimitRef(e.rule.id, e.rule.rate_limit) for e in entries if e.rule.rate_limit)
