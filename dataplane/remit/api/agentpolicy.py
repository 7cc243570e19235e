"""AgentPolicy: what agents may do on which MCP servers, and on whose behalf."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from remit.api.common import (
    DNS_LABEL,
    DURATION,
    Glob,
    Model,
    Resource,
    StatusCondition,
    duration_seconds,
)
from remit.api.validators import valid_condition

RuleEffect = Literal["Allow", "Deny"]
DEFAULT_CONSENT_MAX = "1d"
ANNOTATION_HINTS = ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")


class RateLimit(Model):
    """At most ``calls`` calls per ``per`` window, per (subject, agent, rule)."""

    calls: int = Field(ge=1, description="Calls allowed in each window.")
    per: Annotated[str, StringConstraints(pattern=DURATION)] = Field(
        description="Window length: a number and s, m, h or d (e.g. 1m)."
    )

    @property
    def per_seconds(self) -> int:
        """The window in seconds."""
        return duration_seconds(self.per)


class Subjects(Model):
    """On whose behalf: users (globs on `sub`) or members of groups. Omitted means anyone."""

    users: list[Glob] = Field(default_factory=list, description="Subject ids or globs.")
    groups: list[str] = Field(default_factory=list, description="Token `groups` values.")

    @model_validator(mode="after")
    def _not_empty(self) -> Subjects:
        if not (self.users or self.groups):
            raise ValueError("list users or groups (omit subjects to mean anyone)")
        return self


class Rule(Model):
    """One rule: an effect for tools (or resources, or prompts) under optional conditions."""

    name: Annotated[str, StringConstraints(pattern=DNS_LABEL, max_length=63)] = Field(
        description="Unique within the policy; decisions name it as namespace/policy#name."
    )
    effect: RuleEffect = Field(description="Allow or Deny matching calls; any matching Deny wins.")
    tools: list[Glob] = Field(default_factory=list, description="Tool names or globs.")
    resources: list[Glob] = Field(default_factory=list, description="Resource URIs or globs.")
    prompts: list[Glob] = Field(default_factory=list, description="Prompt names or globs.")
    annotations: dict[str, bool] = Field(
        default_factory=dict,
        description="Tool annotation hints that must hold (MCP defaults apply when undeclared).",
    )
    require_consent: bool = Field(
        False, alias="requireConsent", description="Allow only under an Active ConsentGrant."
    )
    when: str | None = Field(None, description="CEL condition; the rule applies only if true.")
    rate_limit: RateLimit | None = Field(None, alias="rateLimit")
    consent_max_duration: Annotated[str, StringConstraints(pattern=DURATION)] | None = Field(
        None,
        alias="consentMaxDuration",
        description="The longest consent a human may give on the consent page for this rule "
        "(a number and s, m, h or d); omitted: 1d. Only with requireConsent.",
    )

    @field_validator("when")
    @classmethod
    def _check_when(cls, value: str | None) -> str | None:
        return valid_condition(value)

    @property
    def consent_max_seconds(self) -> int:
        """The longest consent the consent page may grant under this rule, in seconds."""
        return duration_seconds(self.consent_max_duration or DEFAULT_CONSENT_MAX)

    @field_validator("annotations")
    @classmethod
    def _known_hints(cls, value: dict[str, bool]) -> dict[str, bool]:
        for key in value:
            if key not in ANNOTATION_HINTS:
                raise ValueError(
                    f"unknown annotation {key!r} (known: {', '.join(ANNOTATION_HINTS)})"
                )
        return value

    @model_validator(mode="after")
    def _one_target(self) -> Rule:
        targets = [k for k in ("tools", "resources", "prompts") if getattr(self, k)]
        if len(targets) != 1:
            raise ValueError("set exactly one of tools, resources or prompts")
        if self.annotations and targets != ["tools"]:
            raise ValueError("annotations only apply to tools")
        if self.require_consent and self.effect == "Deny":
            raise ValueError("requireConsent only applies to Allow rules")
        if self.consent_max_duration is not None and not self.require_consent:
            raise ValueError("consentMaxDuration only applies to rules with requireConsent")
        if self.rate_limit is not None and self.effect == "Deny":
            raise ValueError("rateLimit only applies to Allow rules")
        return self


class AgentPolicySpec(Model):
    """Which agents, on which servers, for which humans, may do what."""

    servers: list[Glob] = Field(min_length=1, description='MCPServer names here, or ["*"].')
    agents: list[Glob] = Field(min_length=1, description="Agent ids or globs.")
    subjects: Subjects | None = Field(None, description="On whose behalf; omitted = anyone.")
    rules: list[Rule] = Field(
        min_length=1, max_length=256, description="What the agents may and may not do."
    )

    @model_validator(mode="after")
    def _unique_rule_names(self) -> AgentPolicySpec:
        seen: set[str] = set()
        for index, rule in enumerate(self.rules):
            if rule.name in seen:
                raise ValueError(f"rules[{index}].name: duplicate rule name {rule.name!r}")
            seen.add(rule.name)
        return self


class AgentPolicyStatus(Model):
    """Whether the operator accepted the policy, and why not."""

    conditions: list[StatusCondition] = Field(default_factory=list)
    observed_generation: int | None = Field(None, alias="observedGeneration")


class AgentPolicy(Resource):
    """What agents may do with MCP tools, for whom."""

    KIND = "AgentPolicy"
    PLURAL = "agentpolicies"
    SHORT_NAMES = ("ap", "agentpol")

    kind: Literal["AgentPolicy"] = "AgentPolicy"
    spec: AgentPolicySpec
    status: AgentPolicyStatus | None = None
