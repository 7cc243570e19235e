"""Tool pinning: notice when an MCP server changes a tool's definition after first sight.

A tool's definition (name, title, description, input and output schema, annotations) is hashed
canonically and pinned the first time the gateway sees it, or taken from the bundle when the
operator has pinned it already. A later, different definition is a "rug pull": under
``Enforce`` the tool is hidden and its calls denied; under ``Audit`` it is recorded only.
``ToolCatalog`` remembers definitions and pins; ``PinEnforcer`` applies the bundle's mode to
both places a definition matters (a ``tools/list`` result and a ``tools/call``) in one rule.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import orjson

from remit.policy.bundle import Bundle

log = logging.getLogger(__name__)

PinVerdict = Literal["pinned", "match", "changed", "unknown"]
PinMode = Literal["Enforce", "Audit", "Disabled"]
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


class PinEnforcer:
    """Tool pinning under the bundle's mode: adopt the bundle's pins, judge calls, filter lists.

    ``on_mismatch`` is called once per definition found to differ from its pin (whatever the
    mode but ``Disabled``), e.g. to count it.
    """

    def __init__(self, catalog: ToolCatalog, on_mismatch: Callable[[], None]) -> None:
        self.catalog = catalog
        self._on_mismatch = on_mismatch
        self._pinned_digest = ""

    def adopt(self, bundle: Bundle) -> None:
        """Merge the pins of ``bundle`` once per bundle digest."""
        if bundle.digest != self._pinned_digest:
            self.catalog.merge_pins(bundle.tool_pins)
            self._pinned_digest = bundle.digest

    def knows(self, name: str) -> bool:
        """Whether a definition of tool ``name`` has been seen."""
        return self.catalog.verdict(name)[0] != "unknown"

    def check_call(self, name: str, mode: PinMode) -> tuple[bool, str | None]:
        """Whether a call to ``name`` may be decided on, and its definition hash (if known)."""
        verdict, digest = self.catalog.verdict(name)
        return self._usable(name, verdict, mode), digest

    def filter_listed(self, tools: Iterable[dict[str, Any]], mode: PinMode) -> list[dict[str, Any]]:
        """Observe each listed definition; keep those that may be shown."""
        kept = []
        for tool in tools:
            verdict, _ = self.catalog.observe(tool)
            if self._usable(str(tool.get("name", "")), verdict, mode):
                kept.append(tool)
        return kept

    def _usable(self, name: str, verdict: PinVerdict, mode: PinMode) -> bool:
        """The one pinning rule: a changed definition counts, and blocks under ``Enforce``."""
        if verdict != "changed" or mode == "Disabled":
            return True
        self._on_mismatch()
        log.warning("tool %r differs from its pin (%s)", name, mode)
        return mode != "Enforce"
