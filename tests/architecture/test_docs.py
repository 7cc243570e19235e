"""The design lives in the repository, and every document is reachable from the README."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
LINKS = re.findall(r"\]\(([^)#\s]+)", README)


def test_every_doc_is_linked_from_the_readme() -> None:
    docs = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))
    assert "docs/architecture.md" in docs
    assert [d for d in docs if d not in LINKS] == []


def test_the_readme_links_nothing_outside_the_repository() -> None:
    local = [link for link in LINKS if not link.startswith(("http://", "https://"))]
    assert [link for link in local if link.startswith("..")] == []
    assert [link for link in local if not (ROOT / link).exists()] == []


def test_the_architecture_names_only_modules_that_exist() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:gateway|policy|audit)/[a-z_]+\.py)`", text))
    assert len(named) > 20
    missing = [n for n in sorted(named) if not (ROOT / "dataplane" / "remit" / n).exists()]
    assert missing == []
