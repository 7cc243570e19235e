"""What one server's signed bundle is, and what it was compiled from.

The sync loop keeps the last bundle it signed (``Signed``: one compact JWS per signing key,
encoded once and shared by every push) and the inputs it compiled it from (``Inputs``), so a
pass whose inputs are the very same indexed objects and pins compiles and signs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from remit.api.common import Resource
from remit.policy.bundle import Bundle


@dataclass
class Signed:
    """A bundle and its compact JWS per signing key id."""

    bundle: Bundle
    tokens: dict[str, bytes] = field(default_factory=dict)  # encoded once, shared by all pushes
    uses: frozenset[str] = frozenset()  # later (post-format-1) fields it writes


@dataclass(frozen=True, slots=True)
class Inputs:
    """What one bundle is compiled from: the index's objects (the index replaces an object when
    its spec changes, never edits one) and the tool pins."""

    resources: tuple[Resource, ...]
    pins: tuple[tuple[str, str], ...]

    def same(self, other: Inputs) -> bool:
        """The very same objects (identity: held here, so never reused) and equal pins."""
        return (
            len(self.resources) == len(other.resources)
            and all(a is b for a, b in zip(self.resources, other.resources, strict=True))
            and self.pins == other.pins
        )


__all__ = ["Inputs", "Signed"]
