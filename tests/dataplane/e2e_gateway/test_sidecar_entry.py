"""``remit gateway`` with no flags is the injected sidecar: settings only from REMIT_* variables.

It must start without the CLI framework and say which setting is wrong, in one line, when
one is; the sidecar admin tests cover the running behaviour.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REMIT = str(Path(sys.executable).parent / "remit")


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REMIT_")}
    return subprocess.run(
        [REMIT, "gateway"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_sidecar_without_a_bundle_key_refuses_to_start_naming_the_setting() -> None:
    result = _run({})
    assert result.returncode == 2
    assert "REMIT_BUNDLE_PUBLIC_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_sidecar_with_a_malformed_setting_names_it(tmp_path: Path) -> None:
    result = _run({"REMIT_BUNDLE_PUBLIC_KEY": str(tmp_path / "k"), "REMIT_LISTEN": "nonsense"})
    assert result.returncode == 2
    assert "REMIT_LISTEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_sidecar_entry_does_not_import_the_cli_framework() -> None:
    probe = (
        "import sys; sys.argv = ['remit', 'gateway'];"
        "import remit.gateway.sidecar, remit.cli.entry;"
        "print(sorted(m for m in ('typer', 'rich', 'pydantic', 'yaml') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.strip() == "[]"
