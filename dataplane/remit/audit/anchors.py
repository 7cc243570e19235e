"""Anchors and digest keys: what keeps a decision log honest against someone who can rewrite it.

A hash chain proves that no line was edited, removed or reordered *relative to its head*:
whoever can rewrite a whole log can recompute every hash. So the operator periodically reads
each sidecar's chain head (``GET /v1/status`` on the admin port it pushes bundles to) and keeps
it outside the pod, in the ConfigMap ``remit-anchors-<server>`` (one key per pod, value
``{"head", "time", "server"}``). ``remit audit verify --anchors`` then requires every anchored
head to be among the records: a log cut before it, or rewritten, no longer contains it.

The same ConfigMap is mounted into the sidecar (optional), so a restarted container's new
chain names its previous anchored head (``AuditSettings.anchor``).

Argument digests are keyed (HMAC-SHA256) with a per-server secret, since a plain sha256 of a
low-entropy argument ("yes", an account number) can be found by hashing guesses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from remit.errors import AuditError

MIN_KEY_BYTES = 32
MAX_ANCHOR_BYTES = 4096
MAX_ANCHORS_BYTES = 8 * 1024 * 1024
_HASH = re.compile(r"[0-9a-f]{64}")


_WHITESPACE = b" \t\n\r\x0b\x0c"


def key_material(value: bytes) -> bytes:
    """The key a digest key or root value (a file, a Secret's ``key``) stands for.

    A value is either **text** or **binary**. Text: once the ASCII whitespace around it is
    trimmed (a file's trailing newline, ``kubectl create secret --from-file``), it is
    UTF-8 of printable characters only (no control characters) and the trimmed text itself
    is the key (the operator
    creates its root as 44 base64 characters; a server's key is 64 hex digits). Binary:
    anything else, used exactly as given, never trimmed (a random key may begin or end with a
    byte that is whitespace; trimming it would make another key, or one too short). The
    operator and ``remit audit verify --digest-root/--digest-key`` read values the same way,
    so their digests agree. ``AuditError`` when the key is shorter than ``MIN_KEY_BYTES``."""
    trimmed = value.strip(_WHITESPACE)
    try:
        text = bool(trimmed) and trimmed.decode().isprintable()
    except UnicodeDecodeError:
        text = False
    key = trimmed if text else value
    if len(key) < MIN_KEY_BYTES:
        raise AuditError(f"the argument digest key must be at least {MIN_KEY_BYTES} bytes")
    return key


def digest_key(path: Path | None, value: str = "") -> bytes | None:
    """The argument digest key from ``path`` (preferred) or ``value``; None when neither."""
    if path is not None:
        try:
            return key_material(path.read_bytes())
        except OSError as exc:
            raise AuditError(f"cannot read the digest key {path}: {exc.strerror}") from exc
    if value:
        return key_material(value.strip().encode())
    return None


@dataclass(frozen=True, slots=True)
class Anchor:
    """One pod's chain head as the operator last saw it."""

    pod: str
    head: str
    time: str = ""
    server: str = ""

    def to_json(self) -> bytes:
        """The ConfigMap value."""
        return msgspec.json.encode({"head": self.head, "time": self.time, "server": self.server})


def parse_anchor(pod: str, value: Any) -> Anchor:
    """One anchor from its ConfigMap value (JSON text or an object)."""
    if isinstance(value, str | bytes):
        if len(value) > MAX_ANCHOR_BYTES:
            raise AuditError(f"anchor of {pod}: larger than {MAX_ANCHOR_BYTES} bytes")
        try:
            value = msgspec.json.decode(value)
        except msgspec.DecodeError as exc:
            raise AuditError(f"anchor of {pod}: not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise AuditError(f"anchor of {pod}: expected an object with head")
    head = value.get("head")
    if not isinstance(head, str) or not _HASH.fullmatch(head):
        raise AuditError(f"anchor of {pod}: head must be 64 lower-case hex digits")
    time, server = value.get("time", ""), value.get("server", "")
    if not isinstance(time, str) or not isinstance(server, str):
        raise AuditError(f"anchor of {pod}: time and server must be strings")
    return Anchor(pod, head, time, server)


def read_anchor(path: Path | None) -> str | None:
    """The head in this pod's anchor file (None when there is none yet)."""
    if path is None:
        return None
    try:
        data = path.read_bytes()[: MAX_ANCHOR_BYTES + 1]
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AuditError(f"cannot read the anchor file {path}: {exc.strerror}") from exc
    return parse_anchor(path.name, data).head


def parse_anchors(data: bytes) -> list[Anchor]:
    """Anchors from ``kubectl get configmap remit-anchors-<server> -o yaml|json`` (or a List of
    them), or a plain ``{pod: {"head": ...}}`` mapping."""
    import yaml  # noqa: PLC0415 - only the CLI reads anchors; the sidecar never imports YAML

    if len(data) > MAX_ANCHORS_BYTES:
        raise AuditError(f"anchors larger than {MAX_ANCHORS_BYTES} bytes")
    try:
        document = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise AuditError(f"anchors are neither JSON nor YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise AuditError("anchors: expected a ConfigMap, a List of them, or a mapping")
    maps: list[Any]
    if document.get("kind") == "List":
        maps = [item.get("data") for item in document.get("items") or [] if isinstance(item, dict)]
    elif document.get("kind") == "ConfigMap":
        maps = [document.get("data")]
    else:
        maps = [document]
    anchors: list[Anchor] = []
    for entries in maps:
        if not isinstance(entries, dict):
            continue
        anchors.extend(parse_anchor(str(pod), value) for pod, value in entries.items())
    return anchors


__all__ = [
    "MIN_KEY_BYTES",
    "Anchor",
    "digest_key",
    "parse_anchor",
    "parse_anchors",
    "read_anchor",
]
