"""Validation helpers the resource models share: CEL conditions checked at load time.

Checking comes from ``remit.celcheck``, never from the policy engine: the API layer sits
below ``remit.policy`` and must not depend on it.
"""

from __future__ import annotations

from remit.celcheck import check


def valid_condition(source: str | None) -> str | None:
    """Return ``source`` if it is a valid CEL condition; raise ``ValueError`` naming the problem.

    The message carries the 1-based column so users can find the mistake in their YAML.
    """
    if source is None:
        return None
    if not source.strip():
        raise ValueError("empty CEL expression (omit the field instead)")
    _, problem = check(source)
    if problem is not None:
        at = f" at column {problem.position + 1}" if problem.position is not None else ""
        raise ValueError(f"invalid CEL{at}: {problem.reason} in {source!r}")
    return source
