"""`remit grant` for a policy directory: YAML the loader accepts, grantedBy said and sourced."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

from typer.testing import CliRunner

from remit.api.consentgrant import ConsentGrant
from remit.api.loader import load
from remit.cli.main import app

runner = CliRunner()
CREATE = ["grant", "create", "alice-write", "-n", "agents", "--subject", "alice@example.com",
          "--agent", "support-bot", "--server", "files", "--tool", "write_file,edit_*",
          "--expires-in", "8h", "--reason", "T-1"]  # fmt: skip


def test_create_writes_a_valid_grant_naming_who_granted_it(tmp_path: Path) -> None:
    result = runner.invoke(app, [*CREATE, "-f", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"grantedBy {getpass.getuser()!r} (from the local user)" in result.stdout
    (grant,) = load([tmp_path]).of(ConsentGrant)
    assert grant.ref == "agents/alice-write"
    assert grant.spec.tools == ["write_file", "edit_*"]
    assert grant.spec.granted_by == getpass.getuser()

    again = runner.invoke(app, [*CREATE, "-f", str(tmp_path)])
    assert again.exit_code == 2
    assert "exists already" in again.stderr


def test_granted_by_flag_is_used_and_said(tmp_path: Path) -> None:
    result = runner.invoke(app, [*CREATE, "-f", str(tmp_path), "--granted-by", "lead@x.com"])
    assert result.exit_code == 0, result.output
    assert "grantedBy 'lead@x.com' (from the --granted-by)" in result.stdout


def test_revoke_and_list(tmp_path: Path) -> None:
    assert runner.invoke(app, [*CREATE, "-f", str(tmp_path)]).exit_code == 0
    revoked = runner.invoke(
        app, ["grant", "revoke", "alice-write", "-n", "agents", "-f", str(tmp_path)]
    )
    assert revoked.exit_code == 0, revoked.output
    listed = runner.invoke(
        app, ["grant", "list", "-n", "agents", "-f", str(tmp_path), "-o", "json"]
    )
    assert [(r["name"], r["phase"]) for r in json.loads(listed.stdout)] == [
        ("alice-write", "Revoked")
    ]


def test_a_bad_grant_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    result = runner.invoke(app, [*CREATE[:-4], "--expires-in", "8 hours", "-f", str(tmp_path)])
    assert result.exit_code == 2
    assert "--expires-in: invalid duration" in result.stderr
    bad_when = runner.invoke(app, [*CREATE, "--when", "args.x +", "-f", str(tmp_path)])
    assert bad_when.exit_code == 2
    assert "spec.when: invalid CEL" in bad_when.stderr
    assert list(tmp_path.iterdir()) == []
