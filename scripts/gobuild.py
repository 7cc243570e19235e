"""The scaffolding every pinned Go build of the test tiers shares, so it is written once.

``control_plane.py`` (kube-apiserver, etcd), ``dex.py`` and ``rulecheck.py`` each generate a
wrapper Go module and build it from the Go module proxy into a cache outside the repo
(``~/.cache/remit/<thing>/<pin>/``). What is the same for all of them lives here: finding the
Go toolchain, a build environment (local toolchain only, no cgo, module mode, bounded
parallelism), running ``go`` under ``nice`` so engineers sharing the machine keep their CPU,
a lock file so two worktrees asking at once build once, and installing a build: the binaries
go to a fresh ``bin-*`` folder that replaces ``bin/`` only once every step succeeded (a failed
build leaves no half folder behind), next to a ``build.json`` saying what was built, with
which Go and how long it took.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def cache_base(variable: str, name: str) -> Path:
    """``$variable`` when set, else ``$XDG_CACHE_HOME`` (or ``~/.cache``) ``/remit/name``."""
    explicit = os.environ.get(variable)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "remit" / name


def go_binary(tool: str) -> str:
    """The Go toolchain: ``$REMIT_GO``, ``go`` on the PATH or /usr/local/go; exits without."""
    for candidate in (os.environ.get("REMIT_GO"), shutil.which("go"), "/usr/local/go/bin/go"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise SystemExit(f"{tool}: no Go toolchain found (set REMIT_GO or put go on PATH)")


def go_env(work: Path) -> dict[str, str]:
    """The environment of a build: the local toolchain, no cgo, two jobs, module mode."""
    env = dict(os.environ)
    env["GOFLAGS"] = env.get("GOFLAGS", "-p=2") + " -mod=mod -trimpath"
    env["GOTOOLCHAIN"] = "local"
    env["CGO_ENABLED"] = "0"
    env.setdefault("GOPROXY", "https://proxy.golang.org")
    env.setdefault("GOMAXPROCS", "2")
    env["GOWORK"] = "off"
    env.setdefault("TMPDIR", str(work))
    return env


def run(tool: str, argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run ``argv`` under ``nice``; its stdout, or exit showing the end of its output."""
    print(f"{tool}: $", " ".join(argv), flush=True)
    done = subprocess.run(
        ["nice", "-n", "15", *argv], check=False, cwd=cwd, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-8000:])
        raise SystemExit(f"{tool}: {argv[1:3]} failed with exit {done.returncode}")
    return done.stdout


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold ``folder/.lock`` (created with the folder): one build of a pin at a time."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def install(
    tool: str,
    go: str,
    folder: Path,
    pins: dict[str, str],
    steps: Callable[[Path], dict[str, float]],
) -> Path:
    """Build with ``steps`` (given the staging folder, returns its timings in seconds) and
    install the result as ``folder/bin``, with ``folder/build.json``; call it holding
    ``locked(folder)``. A failed build removes its staging folder and leaves ``bin`` alone."""
    staging = Path(tempfile.mkdtemp(prefix="bin-", dir=folder))
    try:
        timings = steps(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    version = subprocess.run([go, "version"], check=False, capture_output=True, text=True)
    record: dict[str, object] = {
        **pins,
        "go": version.stdout.strip(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **timings,
    }
    (folder / "build.json").write_text(json.dumps(record, indent=2) + "\n")
    final = folder / "bin"
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    print(f"{tool}: built in {sum(timings.values()):.0f}s: {record}", flush=True)
    return final
