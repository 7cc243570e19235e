"""Install Node.js, the MCP conformance suite and the MCP Inspector, pinned, into a cache.

The conformance tier (tests/conformance/) runs ``@modelcontextprotocol/conformance`` and the
Inspector CLI (``@modelcontextprotocol/inspector --cli``). Both need Node.js >= 22; the machine
may have an older one, so Node itself comes from npm (the ``node`` package, whose install
script fetches the matching ``node-linux-*`` binary package). Everything is pinned by
``tests/conformance/node/package.json`` and its ``package-lock.json`` and installed with
``npm ci``; nothing is committed but those two files.

    python scripts/node_tools.py           # install if missing, print the install directory
    python scripts/node_tools.py --check   # exit 1 unless installed

The cache is ``$REMIT_NODE_TOOLS_CACHE`` or ``~/.cache/remit/node-tools`` with one folder per
hash of the two files, so a change to the pins installs afresh and worktrees share installs.
A lock file makes two callers at once install once. Needs only ``npm`` on PATH (any version
that supports ``npm ci``) and the npm registry.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SPEC = Path(__file__).resolve().parents[1] / "tests" / "conformance" / "node"
FILES = ("package.json", "package-lock.json")
MIN_NODE = 22


def cache_root() -> Path:
    explicit = os.environ.get("REMIT_NODE_TOOLS_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "remit" / "node-tools"


def install_dir(root: Path | None = None) -> Path:
    digest = hashlib.sha256()
    for name in FILES:
        digest.update((SPEC / name).read_bytes())
    return (root or cache_root()) / digest.hexdigest()[:16]


def present(root: Path | None = None) -> bool:
    folder = install_dir(root)
    return (folder / ".installed").exists() and all(
        os.access(folder / "node_modules" / ".bin" / tool, os.X_OK)
        for tool in ("node", "conformance", "mcp-inspector")
    )


def _node_major(folder: Path) -> int:
    node = folder / "node_modules" / ".bin" / "node"
    out = subprocess.run([str(node), "--version"], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().lstrip("v").split(".")[0])


def install(root: Path | None = None) -> Path:
    """``npm ci`` into a temporary folder next to the target, verified, then renamed."""
    target = install_dir(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if present(root):
            return target
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("node-tools: npm not found on PATH")
        work = Path(tempfile.mkdtemp(prefix=".install-", dir=target.parent))
        try:
            for name in FILES:
                shutil.copy(SPEC / name, work / name)
            argv = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
            done = subprocess.run(argv, cwd=work, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"node-tools: npm ci failed:\n{done.stderr[-4000:]}")
            if _node_major(work) < MIN_NODE:
                raise SystemExit(f"node-tools: the installed Node.js is older than {MIN_NODE}")
            (work / ".installed").touch()
            shutil.rmtree(target, ignore_errors=True)
            work.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 unless installed")
    args = parser.parse_args()
    if args.check:
        if not present():
            print(f"node-tools: not installed in {install_dir()}", file=sys.stderr)
            return 1
        print(install_dir())
        return 0
    print(install())
    return 0


if __name__ == "__main__":
    sys.exit(main())
