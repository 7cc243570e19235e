"""What a decision record keeps of a call's arguments: a digest, and optionally redacted values.

Arguments can hold anything a user typed into an agent, so by default a record keeps only the
sha256 of their canonical JSON: enough to prove later which arguments were decided on, without
copying them into logs. The opt-in ``redacted`` mode also keeps the values, with every value
under a key that looks secret replaced by ``[REDACTED]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from remit.audit.canonical import digest_json
from remit.errors import AuditError

ArgumentMode = Literal["digest", "redacted"]

REDACTED = "[REDACTED]"

#: A key is secret when its lower-cased name contains one of these. Over-matching (``monkey``)
#: is the safe direction: the digest still identifies the exact value.
SECRET_KEY_PARTS = (
    "password",
    "passwd",
    "token",
    "secret",
    "key",
    "authorization",
    "cookie",
    "credential",
)


class ArgumentEvidence(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """The ``arguments`` field of a decision record.

    ``digest`` is the sha256 hex of the canonical JSON of the arguments exactly as received.
    ``values`` is ``None`` (and left out of the line) in ``digest`` mode, else the arguments
    with secrets redacted.
    """

    digest: str
    values: dict[str, Any] | None = None


def is_secret_key(key: str) -> bool:
    """Whether a key's name suggests its value is a secret."""
    lowered = key.lower()
    return any(part in lowered for part in SECRET_KEY_PARTS)


def redact(value: Any) -> Any:
    """Return ``value`` with every value under a secret-looking key replaced by ``[REDACTED]``.

    Walks nested objects and lists; the input is not modified.
    """
    if isinstance(value, Mapping):
        return {str(k): REDACTED if is_secret_key(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def evidence_for(
    arguments: Mapping[str, Any] | None, mode: ArgumentMode = "digest"
) -> ArgumentEvidence | None:
    """Build the record's ``arguments`` field; ``None`` when the request had no arguments.

    Raises :class:`AuditError` when the arguments cannot be serialised as JSON.
    """
    if arguments is None:
        return None
    if not isinstance(arguments, dict):
        arguments = dict(arguments)
    try:
        digest = digest_json(arguments)
    except (TypeError, msgspec.EncodeError) as exc:
        raise AuditError(f"call arguments cannot be recorded: {exc}") from exc
    if mode == "redacted":
        return ArgumentEvidence(digest=digest, values=redact(arguments))
    return ArgumentEvidence(digest=digest)
