"""crds/ is the single source: the chart's copy must not drift, and the chart renders each CRD
unchanged except for the keep annotation and labels."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from scripts.sync_chart_crds import SOURCE, drift, sync

from tests.helm.chart import ROOT, find, load_yaml, manifests


def test_chart_copy_of_the_crds_has_not_drifted() -> None:
    assert sorted(p.name for p in SOURCE.glob("*.yaml")), "crds/ is empty: run `make crds`"
    problems = drift()
    assert not problems, f"{problems}: run `make chart-crds`"


def test_drift_check_names_each_difference(tmp_path: Path) -> None:
    source, target = tmp_path / "crds", tmp_path / "chart"
    shutil.copytree(SOURCE, source)
    sync(source, target)
    assert drift(source, target) == []
    first = sorted(target.glob("*.yaml"))[0]
    first.write_text(first.read_text() + "# edited\n")
    (target / "stale.yaml").write_text("{}\n")
    (sorted(source.glob("*.yaml"))[-1]).unlink()
    problems = drift(source, target)
    assert f"differs from crds/: {first.name}" in problems
    assert "not in crds/: stale.yaml" in problems
    assert any(p.startswith("not in crds/: remit.dev_") for p in problems)
    sync(source, target)
    assert drift(source, target) == []


def test_check_command_exits_non_zero_on_drift_with_a_message() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/sync_chart_crds.py", "--check"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_rendered_crds_are_the_sources_plus_keep() -> None:
    rendered = manifests()
    for path in sorted(SOURCE.glob("*.yaml")):
        (source,) = load_yaml(path)
        crd = find(rendered, "CustomResourceDefinition", source["metadata"]["name"])
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert crd["spec"] == source["spec"]
        assert source["metadata"]["labels"].items() <= crd["metadata"]["labels"].items()


def test_keep_can_be_turned_off() -> None:
    for crd in (o for o in manifests({"crds": {"keep": False}}) if o["kind"].startswith("Custom")):
        assert "helm.sh/resource-policy" not in crd["metadata"].get("annotations", {})
