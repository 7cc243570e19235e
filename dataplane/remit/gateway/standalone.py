"""Compiling a standalone gateway's policy directory in a short-lived child process.

Why: reading 10,000 ConsentGrants from YAML imports PyYAML, pydantic and the resource models
and builds some hundred thousand small objects; the gateway kept about 50 MiB of that for its
whole life (module code that never unloads, and a heap the parsed documents left fragmented,
which ``gc`` and ``malloc_trim`` cannot return). A sidecar never parses YAML: the operator
compiles and pushes. Standalone mode does the same split inside one command at start: a child
process (a fresh interpreter, so it shares nothing with the gateway; started with
``subprocess``, not ``multiprocessing``, whose ``spawn`` also starts a resource-tracker process
that stayed for the gateway's life, ~13 MiB) loads, validates, compiles and signs with the
run's key, and hands back only the signed bundle. The gateway installs it through the
verification path a pushed bundle takes and holds what a sidecar holds. A later reload of the
directory (``reload.py``) compiles the same way.

Errors keep their text: the child renders a :class:`~remit.errors.RemitError` and the parent
raises it again as :class:`~remit.errors.CompileError` (the CLI prints the message); a child
that dies without answering is a CompileError naming its exit code and last stderr line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from joserfc.jwk import OKPKey

from remit.errors import CompileError, RemitError

# The child: read the request from stdin, take the parent's import path (as multiprocessing's
# spawn does), compile, write one JSON answer to stdout.
_CHILD = (
    "import json, sys; request = json.loads(sys.stdin.buffer.read()); "
    "sys.path[:] = request['path']; "
    "from remit.gateway.standalone import answer; "
    "sys.stdout.write(json.dumps(answer(request)))"
)


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """Compile and sign in the child: ``{"ok": true, "token", "server"}`` or ``{"ok": false,
    "error"}``."""
    from remit.gateway.reload import compile_dirs  # noqa: PLC0415
    from remit.policy.signing import load_key, sign  # noqa: PLC0415

    dirs = tuple(Path(d) for d in request["dirs"])
    try:
        bundle = compile_dirs(dirs, request["server"], request["namespace"], request["serial"])
        token = sign(bundle, load_key(request["key"]))
    except RemitError as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": True, "token": token, "server": f"{bundle.server.namespace}/{bundle.server.name}"}


def compile_in_child(
    dirs: tuple[Path, ...], server: str, namespace: str | None, serial: int, key: OKPKey
) -> tuple[str, str]:
    """Compile ``dirs`` for ``server`` in a child process and sign with ``key``; return the JWS
    and the server (``namespace/name``). Raises :class:`CompileError` with the child's error."""
    request = {
        "dirs": [str(d) for d in dirs], "server": server, "namespace": namespace,
        "serial": serial, "key": json.dumps(key.as_dict(private=True)), "path": sys.path,
    }  # fmt: skip
    done = subprocess.run(  # the key goes through a pipe, never the command line
        [sys.executable, "-c", _CHILD],
        input=json.dumps(request).encode(),
        capture_output=True,
        check=False,
    )
    try:
        reply = json.loads(done.stdout.rsplit(b"\n", 1)[-1])  # the answer is the last line
    except ValueError:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        raise CompileError(
            f"the policy compiler stopped (exit {done.returncode})"
            + (f": {said[-1]}" if said else "")
        ) from None
    if not reply["ok"]:
        raise CompileError(reply["error"])
    return str(reply["token"]), str(reply["server"])
