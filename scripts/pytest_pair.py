"""Run the whole test suite as two pytest processes at once (``make test`` on two cores).

Run one after the other, the suite keeps about one core busy: the tiers that start real
processes (kube-apiserver and etcd, Keycloak and Dex, Chromium, the conformance suite, the
e2e gateway, the README's commands) spend much of their time waiting on them. So one plain
pytest process runs those tiers while another runs everything else; each is an ordinary
``python -m pytest`` (same conftests, same session fixtures, each process starts a tier's
processes once), so a test runs exactly as it does under a plain ``pytest`` of its folder.
The two halves take about the same time (measured under load: the tiers 700 s, the rest
894 s, before tests/readme, about 90 s of the rest, moved to the tiers). Each half picks the
ports of the servers it starts from its own slice (``REMIT_TEST_PORT_SLICE``,
tests/support/ports.py), so neither picks a port the other picked and has not bound yet.

Each run's output is kept and printed whole when both have ended (first the one that ended
first), and the exit status is the first non-zero one, so either half failing fails
``make test``. Arguments are passed to both runs:

    python scripts/pytest_pair.py            # as make test runs it
    python scripts/pytest_pair.py -x -q      # options for both halves
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Folders whose tests wait on real processes; run together in one pytest process.
TIERS = (
    "tests/kube",
    "tests/conformance",
    "tests/idp",
    "tests/consent",
    "tests/dataplane/e2e_gateway",
    "tests/readme",
)


def halves() -> list[tuple[str, list[str]]]:
    """The two pytest argument lists: the tiers, and the rest of ``tests``."""
    rest = ["tests", *(f"--ignore={folder}" for folder in TIERS)]
    return [("tiers", list(TIERS)), ("rest", rest)]


def port_slice(index: int, count: int) -> dict[str, str]:
    """The environment giving run ``index`` of ``count`` its own ports (tests/support/ports.py):
    a port one half picked for a server is never picked by the other before it is bound."""
    return {"REMIT_TEST_PORT_SLICE": f"{index}/{count}"}


def main(argv: list[str]) -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="remit-pytest-") as tmp:
        running: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        try:
            pairs = halves()
            for index, (name, args) in enumerate(pairs):
                log = Path(tmp) / f"{name}.log"
                with log.open("wb") as out:
                    process = subprocess.Popen(
                        [sys.executable, "-m", "pytest", *args, *argv],
                        cwd=REPO,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env={
                            **os.environ,
                            "PYTHONUNBUFFERED": "1",
                            **port_slice(index, len(pairs)),
                        },
                    )
                running.append((name, process, log))
            print(f"pytest: {' and '.join(n for n, _, _ in running)} at once", flush=True)
            ended: list[tuple[str, int, Path, float]] = []
            while len(ended) < len(running):
                for name, process, log in running:
                    code = process.poll()
                    if code is not None and name not in {e[0] for e in ended}:
                        ended.append((name, code, log, time.monotonic() - started))
                time.sleep(0.5)
        finally:
            for _, process, _ in running:
                if process.poll() is None:
                    process.terminate()
                    process.wait(30)
        status = 0
        for name, code, log, seconds in ended:
            print(f"\n===== pytest {name}: exit {code} after {seconds:.0f} s =====", flush=True)
            sys.stdout.buffer.write(log.read_bytes())
            sys.stdout.flush()
            if code != 0 and status == 0:
                status = code
    print(f"\npytest: both ended in {time.monotonic() - started:.0f} s, exit {status}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
