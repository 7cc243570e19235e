"""`remit gateway ARGS` parses its flags without Typer (cli/gateway_args.py, their only
definition): one line and exit code 2 for a bad one, no CLI framework in the process, and the
full app's `gateway` command passes its arguments through to the same parser.

Real processes for what users see (the console script); the parser's mapping in-process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from remit.cli.gateway_args import OPTIONS, GatewayFlags, flags
from remit.cli.main import app
from tests.dataplane.cli.support import one_line

REMIT = str(Path(sys.executable).parent / "remit")
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
SUMMARY = "Run the gateway. Decision records go to stdout (or --audit-file); logs to stderr."
WIDTH = {"COLUMNS": "80"}  # argparse and Rich wrap help to this


def remit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REMIT_")}
    return subprocess.run(
        [REMIT, *args], env={**clean, **WIDTH, **(env or {})},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def remit_gateway(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return remit("gateway", *args, env=env)


def words(text: str) -> str:
    """``text`` with its wrapping (and Rich's box edges) undone: words one space apart."""
    return " ".join(text.replace("│", " ").split())


def test_every_flag_reaches_the_gateway_with_its_type(tmp_path: Path) -> None:
    parsed = flags(
        ["-f", str(tmp_path), f"--filename={EXAMPLES}", "-s", "files", "-n", "agents",
         "--upstream", "http://127.0.0.1:9/mcp", "--listen", "127.0.0.1:1",
         "--admin-listen", "127.0.0.1:2", "--audit-file", "a.jsonl", "--public-key", "k.jwk",
         "--log-level", "INFO", "--max-connections", "10", "--max-concurrent-requests", "5",
         "--idle-timeout", "1.5", "--header-timeout", "2", "--body-timeout", "3",
         "--max-header-bytes", "4096", "--max-headers", "20", "--admin-max-connections", "4",
         "--max-bundle-age", "60", "--consent-listen", "off", "--consent-client-id", "me"]
    )  # fmt: skip
    assert parsed == GatewayFlags(
        files=[tmp_path, EXAMPLES], upstream="http://127.0.0.1:9/mcp", server="files",
        namespace="agents", listen="127.0.0.1:1", admin_listen="127.0.0.1:2",
        audit_file=Path("a.jsonl"), public_key=Path("k.jwk"), log_level="INFO",
        max_connections=10, max_concurrent_requests=5, idle_timeout=1.5, header_timeout=2.0,
        body_timeout=3.0, max_header_bytes=4096, max_headers=20, admin_max_connections=4,
        max_bundle_age=60.0, consent_listen="off", consent_client_id="me",
    )  # fmt: skip
    assert parsed.variables()["REMIT_MAX_HEADERS"] == "20"
    assert flags([]) == GatewayFlags()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--max-connections", "many"], "--max-connections"),
        (["--idle-timeout", "soon"], "--idle-timeout"),
        (["--no-such-flag"], "--no-such-flag"),
        (["--listen"], "--listen"),
        (["--max-conn", "5"], "--max-conn"),  # no abbreviations: Typer takes none either
        (["-f", str(EXAMPLES), "-s", "files", "--listen", "nonsense"], "--listen"),
        (["-f", str(EXAMPLES), "-s", "files", "--consent-listen", "nonsense"], "--consent-listen"),
        (
            ["-f", str(EXAMPLES), "-s", "files", "--consent-listen", "127.0.0.1:99999"],
            "--consent-listen",
        ),
        (["-f", str(EXAMPLES), "-s", "files", "--consent-listen", "[::1]:x"], "--consent-listen"),
    ],
)
def test_a_bad_flag_is_one_line_and_exit_2(args: list[str], named: str) -> None:
    result = remit_gateway(*args)
    assert result.returncode == 2
    assert named in one_line(result)


def test_a_malformed_variable_is_named_and_a_flag_wins_over_it() -> None:
    standalone = ["-f", str(EXAMPLES), "-s", "files"]
    result = remit_gateway(*standalone, env={"REMIT_MAX_HEADERS": "many"})
    assert result.returncode == 2
    line = one_line(result)
    assert "REMIT_MAX_HEADERS" in line
    assert "'many'" in line
    # With the flag the variable is not read: the settings load, and the start stops at the
    # next problem (no server named), before compiling anything.
    result = remit_gateway("-f", str(EXAMPLES), "--max-headers", "50",
                           env={"REMIT_MAX_HEADERS": "many"})  # fmt: skip
    assert result.returncode == 2
    assert "standalone mode (-f) needs --server NAME" in one_line(result)


def test_help_shows_every_flag_with_its_short_form_default_and_variable() -> None:
    result = remit_gateway("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: remit gateway [-h] [--filename DIR] [--upstream")
    shown = words(result.stdout)
    for names, dest, _, text in OPTIONS:
        metavar = "DIR" if dest == "files" else dest.upper()
        assert ", ".join(f"{name} {metavar}" for name in names) in shown
        assert words(text) in shown
    for expected in (
        "--filename DIR, -f DIR", "--server SERVER, -s SERVER",
        "--namespace NAMESPACE, -n NAMESPACE", "open client connections on the mcp port [1024].",
        "[default: auto]", "[default: remit-consent]", "[REMIT_LOG_LEVEL, else WARNING]",
        f"{SUMMARY} Every limit flag has a REMIT_* variable (README: Connection limits); "
        "the flag wins.",
    ):  # fmt: skip
        assert expected.lower() in shown.lower()
    assert remit_gateway("-h").stdout == result.stdout


def test_remit_help_lists_gateway_with_its_one_line_summary() -> None:
    result = remit("--help")
    assert result.returncode == 0
    assert f"gateway {SUMMARY} operator" in words(result.stdout)


def test_the_apps_gateway_command_passes_everything_to_the_same_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runner = CliRunner()
    helped = runner.invoke(app, ["gateway", "--help"], env=WIDTH)
    assert helped.exit_code == 0
    assert helped.stdout == remit_gateway("--help").stdout
    bad = runner.invoke(app, ["gateway", "--max-conn", "5"])
    assert bad.exit_code == 2
    assert bad.stderr == (
        "error: remit gateway: unrecognized arguments: --max-conn 5 (see remit gateway --help)\n"
    )
    started: list[GatewayFlags] = []
    monkeypatch.setattr("remit.cli.gateway_start.start", lambda parsed: started.append(parsed) or 3)
    result = runner.invoke(app, ["gateway", f"-f{EXAMPLES}", "--max-headers=50", "-s", "files"])
    assert started == [GatewayFlags(files=[EXAMPLES], max_headers=50, server="files")]
    assert result.exit_code == 3


def test_the_gateway_process_imports_no_cli_framework_nor_the_consent_pages_stack() -> None:
    probe = (
        "import sys; sys.argv = ['remit', 'gateway', '-f', 'x'];"
        "import remit.cli.entry, remit.cli.gateway_args, remit.cli.gateway_start,"
        " remit.cli.standalone_consent, remit.gateway.serve;"
        "remit.cli.standalone_consent.check_page_modules();"  # the start's check imports none
        "heavy = ('typer', 'rich', 'pydantic', 'yaml', 'fastapi', 'starlette',"
        " 'jinja2', 'authlib');"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.strip() == "[]"
