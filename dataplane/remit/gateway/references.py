"""What a request names, for deciding it: the target a message's params point at.

``tools/call`` and ``prompts/get`` name their target in ``params.name``, ``resources/read``,
``resources/subscribe`` and ``resources/unsubscribe`` in ``params.uri``. ``completion/complete``
points at what it completes through ``params.ref``: a prompt by name (``ref/prompt``) or a
resource template by URI (``ref/resource``); it is decided with the rules of that prompt or
resource, so the kind travels with the name. Anything malformed names nothing (and is denied).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from remit.policy.methods import REFERENCE_KINDS, REFERENCING

TARGET_PARAM: Final[Mapping[str, str]] = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
    "resources/subscribe": "uri",
    "resources/unsubscribe": "uri",
}
"""Methods whose target is a top-level param, and that param."""


def reference(method: str, params: Mapping[str, Any]) -> tuple[str, str | None]:
    """(name, kind) of what ``method`` with ``params`` targets; ("", None) when nothing.

    ``kind`` is set only for methods decided against a reference (``completion/complete``)."""
    if method in REFERENCING:
        ref = params.get("ref")
        if not isinstance(ref, Mapping):
            return "", None
        ref_type = ref.get("type")
        found = REFERENCE_KINDS.get(ref_type) if isinstance(ref_type, str) else None
        if found is None:
            return "", None
        kind, ref_key = found
        name = ref.get(ref_key)
        return (name, kind) if isinstance(name, str) and name else ("", None)
    key = TARGET_PARAM.get(method)
    value = params.get(key) if key else None
    return (value, None) if isinstance(value, str) else ("", None)
