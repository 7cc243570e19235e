"""Make sure Debian's Chromium is installed for the consent page's browser tests (tests/consent).

Playwright drives it (``executable_path=/usr/bin/chromium``); no browser build is downloaded.
When ``chromium`` is missing and this runs as root, it is installed with apt-get (after one
``apt-get update`` if the package is unknown). The installed version is noted in
``~/.cache/remit/browser/chromium.json`` so a run says which browser it used.

    python scripts/browser.py            # install if missing, print the executable
    python scripts/browser.py --check    # exit 1 unless it is installed
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

EXECUTABLE = Path(os.environ.get("REMIT_CHROMIUM", "/usr/bin/chromium"))
PACKAGE = "chromium"
CACHE = Path(os.environ.get("REMIT_BROWSER_CACHE", Path.home() / ".cache" / "remit" / "browser"))


def _apt(*args: str) -> bool:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], env=env, check=False).returncode == 0


def install() -> None:
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise SystemExit(f"{EXECUTABLE} is missing; install Debian's {PACKAGE} package (as root)")
    if not _apt("install", "-y", "-q", PACKAGE):
        _apt("update", "-q")
        if not _apt("install", "-y", "-q", PACKAGE):
            raise SystemExit(f"apt-get install {PACKAGE} failed")


def version() -> str:
    done = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", PACKAGE], capture_output=True, check=False
    )
    return done.stdout.decode().strip()


def main(argv: list[str]) -> int:
    if not EXECUTABLE.exists():
        if "--check" in argv:
            print(f"{EXECUTABLE}: missing")
            return 1
        install()
    CACHE.mkdir(parents=True, exist_ok=True)
    note = {"executable": str(EXECUTABLE), "package": PACKAGE, "version": version()}
    (CACHE / "chromium.json").write_text(json.dumps(note, indent=2) + "\n")
    print(EXECUTABLE)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
