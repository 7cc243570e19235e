"""``remit access review`` on the examples: rules and active grants per server, three formats."""

from __future__ import annotations

import csv
import io
import json

from typer.testing import CliRunner

from remit.cli.main import app
from tests.support.stack import EXAMPLES

runner = CliRunner()


def test_json_lists_rules_and_only_active_grants_per_server() -> None:
    result = runner.invoke(app, ["access", "review", "-f", str(EXAMPLES), "-o", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    rows = document["rows"]
    files = [r for r in rows if r["server"] == "agents/files"]
    consent_rule = next(r for r in files if r["source"] == "agents/support-bot#write-needs-consent")
    assert consent_rule["consent"].startswith("required (at most 1d)")
    assert consent_rule["agents"] == "support-bot"
    assert "group:support" in consent_rule["subjects"]
    grants = [r for r in files if r["kind"] == "grant"]
    assert [g["source"] for g in grants] == ["agents/alice-support-bot-write"]  # Bob's expired
    assert grants[0]["grantedBy"] == "alice@example.com"
    assert grants[0]["expires"] == "2099-12-31T00:00:00Z"
    sources = {r["source"] for r in rows}
    assert "agents/carol-triage-close" not in sources  # revoked
    assert document["grantsLeftOut"]["Expired"] >= 1
    assert document["grantsLeftOut"]["Revoked"] >= 1


def test_csv_has_the_columns_and_one_line_per_row() -> None:
    result = runner.invoke(app, ["access", "review", "-f", str(EXAMPLES), "-o", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert rows[0].keys() >= {"server", "kind", "source", "grantedBy", "expires", "evidence"}
    assert any(r["kind"] == "grant" for r in rows)


def test_the_table_names_every_server() -> None:
    result = runner.invoke(app, ["access", "review", "-f", str(EXAMPLES)], terminal_width=300)
    assert result.exit_code == 0, result.output
    assert "agents/files" in result.output
    assert "agents/tickets" in result.output


def test_it_needs_exactly_one_source() -> None:
    assert runner.invoke(app, ["access", "review"]).exit_code != 0
