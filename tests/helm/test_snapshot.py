"""The default render, compared with a reviewed snapshot so every change to what the chart
installs shows up in a diff.

Update after an intended change:  REMIT_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/helm
Generated secrets (webhook certificate, signing key) differ on every render and are masked.
The CRDs are left out: they are generated from the models, and test_crds.py already pins
them to crds/ (a model change should not need a chart snapshot update).
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

from tests.helm.chart import render

SNAPSHOT = Path(__file__).parent / "snapshots" / "default.yaml"
GENERATED = re.compile(r"^(\s*(?:tls\.crt|tls\.key|ca\.crt|caBundle|private\.pem):) \S+$", re.M)


def _default_render() -> str:
    parts = [
        f"# Source: {path}\n{text.strip()}\n"
        for path, text in render().items()
        if text.strip() and not path.endswith("/crds.yaml")
    ]
    return GENERATED.sub(r"\1 <generated>", "---\n".join(parts))


def test_masking_hides_only_generated_material() -> None:
    text = _default_render()
    # Only the signing key: the webhook certificate is the operator's (webhook.tls.operatorManaged).
    assert text.count("<generated>") == 1
    assert "LS0t" not in text  # no base64 PEM left


def test_default_render_matches_the_snapshot() -> None:
    actual = _default_render()
    if os.environ.get("REMIT_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(actual, encoding="utf-8")
    expected = SNAPSHOT.read_text(encoding="utf-8") if SNAPSHOT.exists() else ""
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(True), actual.splitlines(True), "snapshot", "render", n=2
        )
    )
    assert not diff, (
        f"the default render changed; review, then REMIT_UPDATE_SNAPSHOTS=1 to accept:\n{diff}"
    )
