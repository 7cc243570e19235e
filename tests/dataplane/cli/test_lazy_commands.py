"""``remit``'s commands are imported when run: ``remit --help`` lists them all without loading any.

Importing every command module up front made ``remit --help`` and ``remit audit verify``
cost ~1.8 s of CPU and ~90 MiB (``remit dev`` pulls in the gateway, uvloop, aiohttp and the
serving stack). The console script runs in a child process that reports which modules it
imported; the listing is compared with the one the app printed when every command was
imported up front, so the table in ``remit.cli.main`` cannot drift from the commands' help.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from remit.cli.main import COMMANDS, app, build

LOG = Path(__file__).parents[1] / "compat" / "v1" / "audit.log"
SERVING = ("uvloop", "aiohttp", "fastapi", "uvicorn", "granian", "remit.gateway")
COMMAND_MODULES = {entry.target.partition(":")[0] for entry in COMMANDS}

# The console script's entry point, then the modules it imported, one a line, on stderr.
REPORT = """\
import atexit, sys
atexit.register(lambda: print(*sorted(sys.modules), sep="\\n", file=sys.stderr))
sys.argv = ["remit", *sys.argv[1:]]
from remit.cli.entry import main
main()
"""


def imported(*argv: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``remit ARGV`` as the console script does; what it printed and imported."""
    result = subprocess.run(
        [sys.executable, "-c", REPORT, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result, set(result.stderr.split())


def test_help_lists_every_command_without_importing_any() -> None:
    result, modules = imported("--help")
    assert result.returncode == 0, result.stderr
    for entry in COMMANDS:
        assert f" {entry.name} " in result.stdout
    assert modules.isdisjoint(SERVING), sorted(modules & set(SERVING))
    assert modules.isdisjoint(COMMAND_MODULES), sorted(modules & COMMAND_MODULES)


def test_audit_verify_imports_its_own_module_only() -> None:
    result, modules = imported("audit", "verify", str(LOG))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK intact: 6 records")
    assert "remit.cli.audit" in modules
    assert modules.isdisjoint(SERVING), sorted(modules & set(SERVING))
    assert modules & COMMAND_MODULES == {"remit.cli.audit"}


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        [],
        ["audt"],
        ["nosuch", "--flag"],
        ["audit", "--help"],
        ["audit", "nosuch"],
        ["dev", "--help"],
        ["keys", "generate", "--help"],
        ["check", "--bogus"],
    ],
)
def test_the_lazy_app_prints_what_the_eager_one_did(argv: list[str]) -> None:
    """Every listed line, usage, error and exit code as with every command imported up front."""
    runner = CliRunner()
    lazy = runner.invoke(app, argv, terminal_width=80)
    eager = runner.invoke(build(lazy=False), argv, terminal_width=80)
    assert (lazy.output, lazy.exit_code) == (eager.output, eager.exit_code)
    assert lazy.output.strip()


def test_a_command_whose_module_is_missing_is_named_not_a_traceback() -> None:
    import typer  # noqa: PLC0415

    from remit.cli.lazy import Lazy, LazyGroup  # noqa: PLC0415

    class Broken(LazyGroup):
        table = (Lazy("broken", "remit_no_such_module:app", "A command not installed."),)

    group = typer.Typer(cls=Broken)
    group.callback()(lambda: None)
    result = CliRunner().invoke(group, ["broken"])
    assert result.exit_code == 1, result.output
    assert "'broken' cannot be loaded" in result.output
    assert "remit_no_such_module" in result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, ImportError)
