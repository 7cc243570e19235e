"""`remit test`: test tables decided by the real compiler and engine, reported like a runner."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import typer
from typer.testing import CliRunner

from remit.cli import policytest

ROOT = Path(__file__).resolve().parents[3]
GITOPS = ROOT / "examples" / "gitops"


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    """The top-level examples (servers, policies, grants in namespace agents), alone."""
    folder = tmp_path / "policies"
    folder.mkdir()
    for name in ("servers.yaml", "policies.yaml", "grants.yaml"):
        (folder / name).write_text((ROOT / "examples" / name).read_text())
    return folder


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("test")(policytest.test)
    app.command("noop")(lambda: None)  # keep `test` a sub-command, as in `remit test`
    return app


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(_app(), ["test", *args], env={"COLUMNS": "200"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def _table(tmp_path: Path, text: str, name: str = "cases_test.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


CASE = """
- name: {name}
  server: files
  subject: alice@example.com
  groups: [support]
  agent: support-bot
  tool: read_file
  args: {{path: /data/readme.txt}}
  annotations: {{readOnlyHint: true}}
  expect: {{effect: {effect}, reason: {reason}}}
"""


def test_the_gitops_example_passes_every_case() -> None:
    code, output = _run("-f", str(GITOPS))
    assert code == 0, output
    assert output.rstrip().splitlines()[-1] == "13 passed, 0 failed"
    assert output.count("PASS ") == 13


def test_a_wrong_expectation_fails_with_the_decision_and_exit_1(
    tmp_path: Path, policies: Path
) -> None:
    table = _table(
        tmp_path,
        CASE.format(name="reads", effect="allow", reason="allowed")
        + CASE.format(name="wrongly expects deny", effect="deny", reason="no_matching_rule"),
    )
    code, output = _run("-f", str(policies), "--tests", str(table))
    assert code == 1
    assert "PASS reads" in output
    assert "FAIL wrongly expects deny" in output
    assert "expected deny (no_matching_rule), got allow (allowed)" in output
    assert "rules: agents/support-bot#read" in output
    assert f"{table}:12" in output  # the line the case starts on
    assert output.rstrip().splitlines()[-1] == "1 passed, 1 failed"


def test_reason_is_optional_but_effect_must_match(tmp_path: Path, policies: Path) -> None:
    table = _table(tmp_path, CASE.format(name="x", effect="allow", reason="allowed"))
    table.write_text(table.read_text().replace(", reason: allowed", ""))
    assert _run("-f", str(policies), "-t", str(table))[0] == 0


def test_time_travel_makes_a_grant_expire(tmp_path: Path, policies: Path) -> None:
    write = """
- name: before expiry
  server: files
  subject: alice@example.com
  groups: [support]
  agent: support-bot
  tool: write_file
  args: {path: /data/alice/a.txt}
  annotations: {destructiveHint: false}
  at: 2099-12-30T00:00:00Z
  expect: {effect: allow}
- name: after expiry
  server: files
  subject: alice@example.com
  groups: [support]
  agent: support-bot
  tool: write_file
  args: {path: /data/alice/a.txt}
  annotations: {destructiveHint: false}
  at: 2099-12-31T00:00:01Z
  expect: {effect: deny, reason: consent_required}
"""
    code, output = _run("-f", str(policies), "-t", str(_table(tmp_path, write)))
    assert code == 0, output


def test_json_and_junit_reports(tmp_path: Path, policies: Path) -> None:
    table = _table(
        tmp_path,
        CASE.format(name="ok", effect="allow", reason="allowed")
        + CASE.format(name="bad", effect="deny", reason="denied_by_rule"),
    )
    code, output = _run("-f", str(policies), "-t", str(table), "-o", "json")
    report = json.loads(output)
    assert code == 1
    assert (report["passed"], report["failed"]) == (1, 1)
    assert report["cases"][1]["decision"]["effect"] == "allow"
    code, output = _run("-f", str(policies), "-t", str(table), "-o", "junit")
    suite = ET.fromstring(output.split("?>", 1)[1]).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    assert [c.get("name") for c in suite if c.find("failure") is not None] == ["bad"]


def test_an_unknown_server_fails_the_case_not_the_run(tmp_path: Path, policies: Path) -> None:
    table = _table(tmp_path, CASE.format(name="x", effect="deny", reason="no_matching_rule"))
    table.write_text(table.read_text().replace("server: files", "server: nope"))
    code, output = _run("-f", str(policies), "-t", str(table))
    assert code == 1
    assert "error: " in output
    assert "nope" in output
    assert "0 passed, 1 failed" in output


@pytest.mark.parametrize(
    ("edit", "complaint"),
    [
        (("effect: allow", "effect: maybe"), "expect.effect"),
        (("reason: allowed", "reason: allowd"), "unknown reason 'allowd'"),
        (("tool: read_file", "prompt: p\n  tool: read_file"), "exactly one of tool"),
        (("agent: support-bot", "agent: support-bot\n  agnet: x"), "agnet"),
        (("  args:", "  at: 2026-01-01T00:00:00\n  args:"), "needs a timezone"),
    ],
)
def test_bad_tables_are_rejected_naming_case_and_field(
    tmp_path: Path, policies: Path, edit: tuple[str, str], complaint: str
) -> None:
    table = _table(tmp_path, CASE.format(name="c1", effect="allow", reason="allowed"))
    table.write_text(table.read_text().replace(*edit))
    code, output = _run("-f", str(policies), "-t", str(table))
    assert code == 2
    assert complaint in output
    assert f"{table}:2 (c1)" in output
    assert "Traceback" not in output


def test_no_tables_or_no_cases_is_an_error_not_a_pass(tmp_path: Path, policies: Path) -> None:
    code, output = _run("-f", str(policies))
    assert code == 2
    assert "no test tables" in output
    code, output = _run("-f", str(policies), "-t", str(_table(tmp_path, "[]\n")))
    assert code == 2
    assert "no test cases" in output


def test_invalid_yaml_and_invalid_resources_exit_2(tmp_path: Path, policies: Path) -> None:
    code, output = _run("-f", str(policies), "-t", str(_table(tmp_path, "- [unclosed\n")))
    assert (code, "invalid YAML" in output) == (2, True)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.yaml").write_text(
        "apiVersion: remit.dev/v1alpha1\nkind: AgentPolicy\nmetadata: {name: x}\nspec: {}\n"
    )
    table = _table(tmp_path, CASE.format(name="x", effect="allow", reason="allowed"))
    code, output = _run("-f", str(broken), "-t", str(table))
    assert code == 2
    assert "invalid resource" in output


def test_tables_are_found_by_folder_or_name_and_not_loaded_as_resources(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    for name in ("servers.yaml", "policies.yaml", "grants.yaml"):
        (repo / name).write_text((ROOT / "examples" / name).read_text())
    case = CASE.format(name="a", effect="allow", reason="allowed")
    (repo / "tests" / "one.yaml").write_text(case)
    (repo / "two_test.yaml").write_text(case.replace("name: a", "name: b"))
    code, output = _run("-f", str(repo))
    assert code == 0, output
    assert "2 passed, 0 failed" in output


def test_a_plain_list_and_the_policytests_mapping_are_both_tables(
    tmp_path: Path, policies: Path
) -> None:
    case = CASE.format(name="a", effect="allow", reason="allowed")
    indented = "\n".join("  " + line if line else line for line in case.splitlines())
    mapping = _table(tmp_path, f"kind: PolicyTests\ncases:\n{indented}\n", "mapping_test.yaml")
    listed = _table(tmp_path, case, "list_test.yaml")
    code, output = _run("-f", str(policies), "-t", str(mapping), "-t", str(listed))
    assert code == 0, output
    assert f"{mapping}:4" in output
    wrong = _table(tmp_path, "kind: Something\ncases: []\n", "wrong_test.yaml")
    code, output = _run("-f", str(policies), "-t", str(wrong))
    assert code == 2
    assert "kind: PolicyTests" in output


def test_examples_still_load_as_one_policy_directory() -> None:
    from remit.api.loader import load  # noqa: PLC0415

    loaded = load([ROOT / "examples"], recursive=True)
    assert loaded.errors == []
    assert any(s.endswith("(PolicyTests)") for s in loaded.skipped), loaded.skipped
