"""What a decision record keeps of a call's arguments: a digest, and optionally redacted values.

Arguments can hold anything a user typed into an agent, so by default a record keeps only the
sha256 of their canonical JSON: enough to prove later which arguments were decided on, without
copying them into logs. The opt-in ``redacted`` mode also keeps the values, with every value
under a key that looks secret replaced by ``[REDACTED]``.
"""

from __future__ import annotations

import hashlib
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

    ``digest`` is the sha256 hex of the canonical JSON of the arguments exactly as received,
    or, when the gateway has a digest key, their HMAC-SHA256 under it; then ``key`` names the
    key (:func:`key_id`) so an investigator holding it can recompute the digest of a value,
    and nobody without it can test guesses. ``values`` is ``None`` (and left out of the line)
    in ``digest`` mode, else the arguments with secrets redacted.
    """

    digest: str
    values: dict[str, Any] | None = None
    key: str | None = None


def is_secret_key(key: str) -> bool:
    """Whether a key's name suggests its value is a secret."""
    lowered = key.lower()
    return any(part in lowered for part in SECRET_KEY_PARTS)


def redact(value: Any) -> Any:
    """Return ``value`` with every value under a secret-looking key replaced by ``[REDACTED]``.

    Walks nested objects and lists without recursion (arguments come from callers, and no
    depth of theirs may exhaust the stack); the input is not modified.
    """
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(value, root, 0)]
    while stack:
        node, parent, slot = stack.pop()
        if isinstance(node, Mapping):
            copy: dict[str, Any] = {}
            parent[slot] = copy
            for key, child in node.items():
                name = str(key)
                copy[name] = REDACTED
                if not is_secret_key(name):
                    stack.append((child, copy, name))
        elif isinstance(node, list | tuple):
            items: list[Any] = [None] * len(node)
            parent[slot] = items
            stack.extend((child, items, index) for index, child in enumerate(node))
        else:
            parent[slot] = node
    return root[0]


_named: tuple[bytes, str] = (b"", "")  # the last key named: computed per key, not per record


def key_id(key: bytes) -> str:
    """A short public name of a digest key: the first 16 hex digits of sha256("remit-key:"+key).

    Remembers only the last key it named (the current one), so a rotated-out secret is not
    kept in memory by this cache.
    """
    global _named  # noqa: PLW0603 - a one-entry memo; the tuple is replaced whole
    last, name = _named
    if key == last and name:
        return name
    name = hashlib.sha256(b"remit-key:" + key).hexdigest()[:16]
    _named = (key, name)
    return name


def evidence_for(
    arguments: Mapping[str, Any] | None,
    mode: ArgumentMode = "digest",
    key: bytes | None = None,
) -> ArgumentEvidence | None:
    """Build the record's ``arguments`` field; ``None`` when the request had no arguments.

    Raises :class:`AuditError` when the arguments cannot be serialised as JSON.
    """
    if arguments is None:
        return None
    if not isinstance(arguments, dict):
        arguments = dict(arguments)
    try:
        digest = digest_json(arguments, key)
    except (TypeError, msgspec.EncodeError, RecursionError) as exc:
        raise AuditError(f"call arguments cannot be recorded: {exc}") from exc
    named = key_id(key) if key is not None else None
    if mode == "redacted":
        return ArgumentEvidence(digest=digest, values=redact(arguments), key=named)
    return ArgumentEvidence(digest=digest, key=named)
