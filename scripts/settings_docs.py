"""Write the ``REMIT_*`` variable tables in docs/ from the settings dataclasses.

Each table sits between ``<!-- settings:NAME -->`` and ``<!-- /settings:NAME -->`` markers;
``python scripts/settings_docs.py`` rewrites them, ``--check`` exits 1 when one is stale
(tests/architecture/test_settings_docs.py runs the same comparison).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from remit.consent.settings import ConsentSettings
from remit.gateway.settings import GatewaySettings
from remit.settings import markdown_table
from remit_operator.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TABLES: dict[str, tuple[Path, type[Any]]] = {
    "operator": (ROOT / "docs" / "operator.md", Settings),
    "gateway": (ROOT / "docs" / "gateway.md", GatewaySettings),
    "consent": (ROOT / "docs" / "consent.md", ConsentSettings),
}


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- settings:{name} -->\n)(.*?)(<!-- /settings:{name} -->)", re.S)


def documented(name: str) -> str:
    """The table as the document holds it now."""
    path, _ = TABLES[name]
    found = _pattern(name).search(path.read_text(encoding="utf-8"))
    if found is None:
        raise SystemExit(f"{path}: no <!-- settings:{name} --> section")
    return found.group(2)


def generated(name: str) -> str:
    """The table the fields describe."""
    return markdown_table(TABLES[name][1])


def write(name: str) -> None:
    """Replace the document's table with the generated one."""
    path, _ = TABLES[name]
    text = path.read_text(encoding="utf-8")
    table = generated(name)
    path.write_text(_pattern(name).sub(lambda m: m.group(1) + table + m.group(3), text), "utf-8")


def main(argv: list[str]) -> int:
    stale = [name for name in TABLES if documented(name) != generated(name)]
    if "--check" in argv:
        for name in stale:
            print(f"{TABLES[name][0]}: the {name} settings table is stale")
        return 1 if stale else 0
    for name in stale:
        write(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
