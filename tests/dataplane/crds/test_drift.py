"""The committed crds/ match the models byte for byte; `remit crds` generates and checks them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from remit.api.crdgen import rendered
from remit.cli.crds import crds_app, find_drift

REPO = Path(__file__).resolve().parents[3]
CRDS = REPO / "crds"
RUN_MAKE = "crds/ is out of date with the models in remit.api: run `make crds` and commit it"


def test_committed_crds_match_the_models_byte_for_byte() -> None:
    expected = rendered()
    on_disk = sorted(p.name for p in CRDS.glob("*.yaml"))
    assert on_disk == sorted(expected), f"{RUN_MAKE} (files: {on_disk})"
    for name, text in expected.items():
        assert (CRDS / name).read_bytes() == text.encode("utf-8"), f"{name}: {RUN_MAKE}"


def test_generation_does_not_depend_on_hash_seed_or_process() -> None:
    script = "import sys; from remit.api.crdgen import rendered; sys.stdout.write(repr(rendered()))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout == repr(rendered())


def test_one_file_per_crd_named_after_the_plural() -> None:
    assert sorted(rendered()) == [
        "remit.dev_agentpolicies.yaml",
        "remit.dev_consentgrants.yaml",
        "remit.dev_mcpservers.yaml",
    ]


def test_generate_then_check_passes_and_rerun_changes_nothing(tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(crds_app, ["generate", "--output", str(tmp_path / "out")])
    assert first.exit_code == 0, first.output
    snapshot = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert len(snapshot) == 3
    second = runner.invoke(crds_app, ["generate", "--output", str(tmp_path / "out")])
    assert second.exit_code == 0
    assert second.output.count("unchanged") == 3
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == snapshot
    check = runner.invoke(crds_app, ["check", "--output", str(tmp_path / "out")])
    assert check.exit_code == 0, check.output
    assert "up to date" in check.output


def test_check_reports_edited_missing_and_stale_files(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(crds_app, ["generate", "-o", str(tmp_path)]).exit_code == 0
    edited = tmp_path / "remit.dev_mcpservers.yaml"
    edited.write_text(
        edited.read_text().replace("shortNames:\n    - mcps", "shortNames:\n    - ms")
    )
    (tmp_path / "remit.dev_consentgrants.yaml").unlink()
    (tmp_path / "remit.dev_oldthings.yaml").write_text("kind: CustomResourceDefinition\n")
    (tmp_path / "unrelated.yaml").write_text("kind: ConfigMap\n")

    result = runner.invoke(crds_app, ["check", "--output", str(tmp_path)])

    assert result.exit_code == 1
    assert "remit.dev_mcpservers.yaml: differs (+1 -1 lines)" in result.output
    assert "-    - ms" in result.output
    assert "+    - mcps" in result.output
    assert "remit.dev_consentgrants.yaml: missing" in result.output
    assert "remit.dev_oldthings.yaml: stale" in result.output
    assert "unrelated.yaml" not in result.output
    assert "run `make crds`" in result.output
    assert "Traceback" not in result.output


def test_generate_repairs_drift_and_removes_only_its_own_stale_files(tmp_path: Path) -> None:
    (tmp_path / "remit.dev_oldthings.yaml").write_text("stale\n")
    (tmp_path / "remit.dev_mcpservers.yaml").write_text("edited by hand\n")
    (tmp_path / "kustomization.yaml").write_text("resources: []\n")

    result = CliRunner().invoke(crds_app, ["generate", "--output", str(tmp_path)])

    assert result.exit_code == 0, result.output
    assert "removed stale" in result.output
    assert find_drift(tmp_path) == []
    assert (tmp_path / "kustomization.yaml").read_text() == "resources: []\n"


def test_check_of_a_missing_directory_fails_clearly(tmp_path: Path) -> None:
    result = CliRunner().invoke(crds_app, ["check", "--output", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert result.output.count(": missing") == 3
    assert "Traceback" not in result.output


def test_generate_into_an_unwritable_place_fails_clearly(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = CliRunner().invoke(crds_app, ["generate", "--output", str(blocker)])
    assert result.exit_code == 1
    assert "error: cannot write CRDs to" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
