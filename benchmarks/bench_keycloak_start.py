"""Keycloak start for the identity-provider tier: from ``kc.sh start`` to a served realm.

Starts the Keycloak that ``scripts/keycloak.py`` installed, as ``tests/idp`` does (a copy of
the realm's database template, a random port on 127.0.0.1), and reports per round the time
until the realm's OIDC discovery document is served, plus the time to point the audience
mappers at a gateway and to log a user in (authorization code + PKCE) and exchange the token
(RFC 8693). The machine's load average is printed with the figures: on two shared cores the
start time follows it closely.

    .venv/bin/python benchmarks/bench_keycloak_start.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.idp.keycloak import Keycloak, installer

from remit.gateway.ports import free_port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not installer.present():
        raise SystemExit("Keycloak is not installed: run `make keycloak`")
    starts: list[float] = []
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory() as scratch:
            load = os.getloadavg()[0]
            began = time.monotonic()
            keycloak = Keycloak.start(Path(scratch), "http://127.0.0.1:1/mcp", free_port())
            ready = time.monotonic() - began
            try:
                began = time.monotonic()
                token = keycloak.login("alice")["access_token"]
                login = time.monotonic() - began
                began = time.monotonic()
                keycloak.exchange(token)
                exchange = time.monotonic() - began
            finally:
                keycloak.stop()
        starts.append(keycloak.started_in)
        print(
            f"round {round_ + 1}: served in {keycloak.started_in:.1f} s "
            f"(ready incl. audience {ready:.1f} s), first login {login:.2f} s, "
            f"exchange {exchange:.2f} s, load average {load:.1f}"
        )
    print(f"median start {statistics.median(starts):.1f} s over {len(starts)} rounds")


if __name__ == "__main__":
    main()
