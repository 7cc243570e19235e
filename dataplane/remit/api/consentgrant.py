"""ConsentGrant: a human's explicit, time-bound delegation of some tools to one agent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import Field, field_validator, model_validator

from remit.api.common import Glob, Model, NonEmptyStr, Resource, StatusCondition
from remit.api.validators import valid_condition

Phase = Literal["Active", "Expired", "Revoked"]
ConsentScope = Literal["call", "arguments", "tool"]


class ConsentEvidence(Model):
    """How the consent was captured, from the human's login rather than from a form field.

    The consent service fills it from the verified ID token (``iss``, ``sub``, ``auth_time``)
    and the consent request the gateway issued; the grant's ``when`` holds the chosen scope as
    CEL. This model is the single source of these fields for every writer of grants.
    """

    method: Literal["ConsentPage"] = Field(
        "ConsentPage", description="Where the human answered: the consent page."
    )
    issuer: NonEmptyStr = Field(description="The ID token's `iss`: who vouched for the login.")
    subject: NonEmptyStr = Field(description="The ID token's `sub`: who logged in and approved.")
    authenticated_at: datetime | None = Field(
        None, alias="authenticatedAt", description="The ID token's `auth_time`, when present."
    )
    consented_at: datetime = Field(alias="consentedAt", description="When the human approved.")
    request: NonEmptyStr = Field(
        description="The consent request answered: the id of the decision record that denied "
        "the call with consent_required."
    )
    scope: ConsentScope = Field(
        description="call: this exact call (its arguments); arguments: the chosen arguments "
        "fixed; tool: the tool within the rule's condition."
    )
    revoked_at: datetime | None = Field(
        None, alias="revokedAt", description="When it was revoked on the consent page."
    )
    revoked_by: str | None = Field(
        None, alias="revokedBy", description="The `sub` of the login that revoked it."
    )


class ConsentGrantSpec(Model):
    """Who consented, to which agent, for what, until when, and why."""

    subject: NonEmptyStr = Field(description="The human granting consent (token `sub`).")
    agent: NonEmptyStr = Field(description="The agent id the consent is given to.")
    server: NonEmptyStr = Field(description="The MCPServer name, in this namespace.")
    tools: list[Glob] = Field(default_factory=list, description="Tool names or globs.")
    resources: list[Glob] = Field(default_factory=list, description="Resource URIs or globs.")
    prompts: list[Glob] = Field(default_factory=list, description="Prompt names or globs.")
    when: str | None = Field(None, description="Optional CEL narrowing of the consent.")
    expires_at: datetime = Field(
        alias="expiresAt", description="Required: consent is always time-bound (RFC 3339)."
    )
    granted_by: NonEmptyStr = Field(alias="grantedBy", description="Who approved: evidence.")
    reason: str = Field("", description="Why, e.g. a ticket id.")
    revoked: bool = Field(False, description="Revoke without losing the evidence.")
    evidence: ConsentEvidence | None = Field(
        None, description="Set by the consent service: the login and request behind the grant."
    )

    @field_validator("when")
    @classmethod
    def _check_when(cls, value: str | None) -> str | None:
        return valid_condition(value)

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("expiresAt needs a time zone, e.g. 2026-12-31T00:00:00Z")
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _something_granted(self) -> ConsentGrantSpec:
        if not (self.tools or self.resources or self.prompts):
            raise ValueError("grant at least one of tools, resources or prompts")
        return self


class ConsentGrantStatus(Model):
    """The grant's phase as the operator last computed it."""

    phase: Phase | None = None
    expires_at: datetime | None = Field(None, alias="expiresAt")
    conditions: list[StatusCondition] = Field(default_factory=list)
    observed_generation: int | None = Field(None, alias="observedGeneration")
    last_used_at: datetime | None = Field(
        None,
        alias="lastUsedAt",
        description="When a gateway last allowed a call under this grant, as its sidecars "
        "report it (written at most once per periodic check).",
    )


class ConsentGrant(Resource):
    """A human's explicit, time-bound delegation to an agent."""

    KIND = "ConsentGrant"
    PLURAL = "consentgrants"
    SHORT_NAMES = ("cg", "consent")

    kind: Literal["ConsentGrant"] = "ConsentGrant"
    spec: ConsentGrantSpec
    status: ConsentGrantStatus | None = None

    def phase(self, now: datetime) -> Phase:
        """Revoked wins over Expired; a grant is Active only before ``expiresAt``."""
        if self.spec.revoked:
            return "Revoked"
        if now >= self.spec.expires_at:
            return "Expired"
        return "Active"
