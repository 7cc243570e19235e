"""Pieces every Remit custom resource shares: metadata, conditions, globs and durations.

The models are the single source of truth for the CRDs in ``crds/`` (see ``remit.api.crdgen``),
so field names, defaults and descriptions here are the product's API.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

GROUP = "remit.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DURATION = r"^[1-9][0-9]*(s|m|h|d)$"
_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]
Glob = Annotated[str, StringConstraints(min_length=1, max_length=253)]


def duration_seconds(value: str) -> int:
    """Convert a duration such as ``30s``, ``1m``, ``2h`` or ``1d`` into seconds."""
    match = re.fullmatch(DURATION, value)
    if match is None:
        raise ValueError(f"invalid duration {value!r}: expected a number and s, m, h or d")
    return int(value[:-1]) * _DURATION_SECONDS[value[-1]]


class Model(BaseModel):
    """Strict base for spec models: unknown fields are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class ObjectMeta(BaseModel):
    """The subset of Kubernetes ``metadata`` Remit reads; everything else is ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    name: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    namespace: str = "default"
    uid: str = ""
    resource_version: str = Field("", alias="resourceVersion")
    generation: int = 0
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class StatusCondition(Model):
    """A standard Kubernetes status condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    observed_generation: int | None = Field(None, alias="observedGeneration")
    last_transition_time: datetime | None = Field(None, alias="lastTransitionTime")


class Resource(BaseModel):
    """A Kubernetes object of one of Remit's kinds."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    KIND: ClassVar[str] = ""
    PLURAL: ClassVar[str] = ""
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ()

    api_version: Literal["remit.dev/v1alpha1"] = Field("remit.dev/v1alpha1", alias="apiVersion")
    metadata: ObjectMeta

    @property
    def ref(self) -> str:
        """``namespace/name``: how errors, decisions and records name this resource."""
        return f"{self.metadata.namespace}/{self.metadata.name}"

    def dump(self) -> dict[str, Any]:
        """The resource as Kubernetes JSON (aliases, no unset optional fields)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")
