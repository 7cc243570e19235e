"""Tool pinning: notice when an MCP server changes a tool's definition after first sight.

A tool's definition (name, title, description, input and output schema, annotations) is hashed
canonically and pinned the first time the gateway sees it, or taken from the bundle when the
operator has pinned it already. A later, different definition is a "rug pull": under
``Enforce`` the tool is hidden and its calls denied; under ``Audit`` it is recorded only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Literal

import orjson

PinVerdict = Literal["pinned", "match", "changed", "unknown"]
_PINNED_FIELDS = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")


def definition_hash(tool: Mapping[str, Any]) -> str:
    """sha256 of the tool's canonical definition (fields absent are left out)."""
    definition = {k: tool[k] for k in _PINNED_FIELDS if tool.get(k) is not None}
    return hashlib.sha256(orjson.dumps(definition, option=orjson.OPT_SORT_KEYS)).hexdigest()


class ToolCatalog:
    """The tools the upstream declared: pins (hash per name) and each tool's last definition."""

    def __init__(self, pins: Mapping[str, str] | None = None, max_tools: int = 10_000) -> None:
        self._pins: dict[str, str] = dict(pins or {})
        self._definitions: dict[str, Mapping[str, Any]] = {}
        self._hashes: dict[str, str] = {}
        self._max = max_tools

    def observe(self, tool: Mapping[str, Any]) -> tuple[PinVerdict, str]:
        """Record a definition seen in a tools/list result; return the verdict and its hash."""
        name = str(tool.get("name", ""))
        digest = definition_hash(tool)
        if name not in self._definitions and len(self._definitions) >= self._max:
            return "unknown", digest  # bounded: an upstream cannot grow our memory without end
        self._definitions[name] = tool
        self._hashes[name] = digest
        pinned = self._pins.get(name)
        if pinned is None:
            self._pins[name] = digest
            return "pinned", digest
        return ("match" if pinned == digest else "changed"), digest

    def verdict(self, name: str) -> tuple[PinVerdict, str | None]:
        """The pin state of a tool by name, from its last seen definition."""
        digest = self._hashes.get(name)
        if digest is None:
            return "unknown", None
        return ("match" if self._pins.get(name) == digest else "changed"), digest

    def annotations(self, name: str) -> Mapping[str, Any]:
        """The annotations of the tool's last seen definition ({} if never seen)."""
        definition = self._definitions.get(name)
        annotations = definition.get("annotations") if definition else None
        return annotations if isinstance(annotations, Mapping) else {}

    def merge_pins(self, pins: Mapping[str, str]) -> None:
        """Adopt pins from a new bundle (the operator's pins win over first sight)."""
        self._pins.update(pins)

    @property
    def pins(self) -> dict[str, str]:
        """Every pin, for the admin API and the operator."""
        return dict(self._pins)
