"""Where in a token a claim lives: a top-level claim name or an RFC 6901 JSON Pointer.

Identity providers put groups and roles in different places: a top-level ``groups`` list
(Okta, Dex, Entra ID), a nested ``realm_access.roles`` (Keycloak), a namespaced claim whose
name is a URL (Auth0, ``https://example.com/roles``). A claim path is therefore either the
exact name of a top-level claim (anything not starting with ``/``, dots and slashes included)
or a JSON Pointer (RFC 6901: ``/realm_access/roles``, with ``~1`` for ``/`` and ``~0`` for
``~`` inside a name). The grammar is six lines, so it is parsed here rather than through a
dependency; a malformed pointer is refused when the resource is loaded, never at call time.
"""

from __future__ import annotations

import re

MAX_PATH_CHARS = 256
MAX_SEGMENTS = 8
_SEGMENT = re.compile(r"(?:[^~]|~[01])+")


def parse_claim_path(text: str) -> tuple[str, ...]:
    """The member names to follow from the token's top-level object, in order.

    Raises ``ValueError`` naming the problem for an empty path, a pointer with a bad escape
    (``~`` not followed by ``0`` or ``1``), an empty segment, or one too long or too deep.
    """
    if not text:
        raise ValueError("a claim path must not be empty")
    if len(text) > MAX_PATH_CHARS:
        raise ValueError(f"claim path longer than {MAX_PATH_CHARS} characters")
    if not text.startswith("/"):
        return (text,)
    segments = []
    for raw in text[1:].split("/"):
        if not raw:
            raise ValueError(f"JSON Pointer {text!r} has an empty segment")
        if not _SEGMENT.fullmatch(raw):
            raise ValueError(f"JSON Pointer {text!r}: '~' must be followed by 0 or 1 (RFC 6901)")
        segments.append(raw.replace("~1", "/").replace("~0", "~"))
    if len(segments) > MAX_SEGMENTS:
        raise ValueError(f"JSON Pointer {text!r} is deeper than {MAX_SEGMENTS} segments")
    return tuple(segments)
