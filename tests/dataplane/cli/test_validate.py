"""`remit validate`: every mistake that loads but cannot work is a warning; --strict fails.

Each case writes a small policy directory and runs the real command line (Typer's runner, the
same app the console script runs).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from remit.cli.main import app

runner = CliRunner()

SERVER = """\
apiVersion: remit.dev/v1alpha1
kind: MCPServer
metadata: {name: files, namespace: agents}
spec:
  selector: {matchLabels: {app: files}}
  authentication: {issuer: "https://idp.example.com", audience: files}
"""


def policy(
    servers: str = "[files]", tools: str = '["read_*"]', when: str | None = None, ns: str = "agents"
) -> str:
    condition = f"\n    when: {when}" if when else ""
    namespace = f", namespace: {ns}" if ns else ""
    return f"""\
apiVersion: remit.dev/v1alpha1
kind: AgentPolicy
metadata: {{name: bot{namespace}}}
spec:
  servers: {servers}
  agents: [bot]
  rules:
  - name: r
    effect: Allow
    tools: {tools}{condition}
"""


def grant(server: str = "files", expires: str = "2999-01-01T00:00:00Z") -> str:
    return f"""\
apiVersion: remit.dev/v1alpha1
kind: ConsentGrant
metadata: {{name: g, namespace: agents}}
spec:
  subject: alice@example.com
  agent: bot
  server: {server}
  tools: [write_file]
  expiresAt: "{expires}"
  grantedBy: admin@example.com
"""


def run(tmp_path: Path, *documents: str, strict: bool = False) -> tuple[int, list[dict[str, str]]]:
    (tmp_path / "resources.yaml").write_text("---\n".join([SERVER, *documents]))
    args = ["validate", "-f", str(tmp_path), "-o", "json", *(["--strict"] if strict else [])]
    result = runner.invoke(app, args)
    return result.exit_code, json.loads(result.stdout)["warnings"]


def test_a_clean_directory_has_no_warnings(tmp_path: Path) -> None:
    assert run(tmp_path, policy(), grant(), strict=True) == (0, [])


@pytest.mark.parametrize(
    ("document", "reason", "field", "words"),
    [
        (policy(servers="[file]"), "NoServer", "spec.servers", "names no MCPServer in namespace"),
        (grant(server="filez"), "NoServer", "spec.server", "names no MCPServer in namespace"),
        (policy(tools='["search_[a-"]'), "Glob", "spec.rules[0].tools[0]", "never closed"),
        (policy(tools='["read_[z-a]"]'), "Glob", "spec.rules[0].tools[0]", "can never match"),
        (policy(tools='["read file"]'), "Glob", "spec.rules[0].tools[0]", "cannot contain ' '"),
        (policy(servers="[Files]"), "Glob", "spec.servers[0]", "cannot contain 'F'"),
        (policy(when="""'"EU"'"""), "NotBoolean", "spec.rules[0].when", "str 'EU'"),
        (policy(when="'size(args.path)'"), "NotBoolean", "spec.rules[0].when", "not a boolean"),
        (grant(expires="2020-01-01T00:00:00Z"), "ExpiredWhenApplied", "spec.expiresAt",
         "already expired"),
        (policy(ns=""), "NoNamespace", "metadata.namespace", "read as 'default'"),
    ],
)  # fmt: skip
def test_each_silent_mistake_warns_and_strict_fails(
    tmp_path: Path, document: str, reason: str, field: str, words: str
) -> None:
    code, warnings = run(tmp_path, document)
    assert code == 0
    # (A misspelt server or a default namespace also leaves the policy without its server.)
    found = [w for w in warnings if (w["reason"], w["field"]) == (reason, field)]
    assert len(found) == 1, warnings
    assert {w["reason"] for w in warnings} <= {reason, "NoServer"}
    assert words in found[0]["message"]
    assert found[0]["source"].startswith(str(tmp_path / "resources.yaml"))
    assert run(tmp_path, document, strict=True)[0] == 1


def test_a_directory_without_resources_says_so_and_suggests_recursive(tmp_path: Path) -> None:
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "policy.yaml").write_text(policy())
    result = runner.invoke(app, ["validate", "-f", str(tmp_path)])
    assert result.exit_code == 0
    assert "no Remit resources found" in result.stderr
    assert "add -R" in result.stderr
    assert runner.invoke(app, ["validate", "-f", str(tmp_path), "--strict"]).exit_code == 1


def test_errors_name_the_file_and_the_kind(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(policy(when="'args.x +'"))
    result = runner.invoke(app, ["validate", "-f", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{tmp_path / 'p.yaml'}#0: AgentPolicy agents/bot: spec.rules[0].when" in result.stderr


def test_piped_output_is_not_wrapped_at_80_columns(tmp_path: Path) -> None:
    code, _ = run(tmp_path, grant(server="a-server-name-long-enough-to-pass-eighty-cols"))
    assert code == 0
    result = runner.invoke(app, ["validate", "-f", str(tmp_path)])
    line = next(line for line in result.stderr.splitlines() if "names no MCPServer" in line)
    assert len(line) > 120


def test_remit_test_reports_every_bad_case_not_the_first(tmp_path: Path) -> None:
    (tmp_path / "resources.yaml").write_text("---\n".join([SERVER, policy()]))
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "cases.yaml").write_text(
        "- {name: one, server: files, subject: a, agent: bot, expect: {effect: allow}}\n"
        "- {name: two, server: files, subject: a, agent: bot, tool: t, expect: {effect: maybe}}\n"
        "- {name: ok, server: files, subject: a, agent: bot, tool: r, expect: {effect: deny}}\n"
    )
    result = runner.invoke(app, ["test", "-f", str(tmp_path)])
    assert result.exit_code == 2
    assert "cases.yaml:1 (one): name exactly one of tool, resource or prompt" in result.stderr
    assert "cases.yaml:2 (two): expect.effect" in result.stderr
    assert "2 bad test case(s)" in result.stderr
