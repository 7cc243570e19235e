"""Compiling a standalone gateway's policy directory in a short-lived child process.

Why: reading 10,000 ConsentGrants from YAML imports PyYAML, pydantic and the resource models
and builds some hundred thousand small objects; the gateway kept about 50 MiB of that for its
whole life (module code that never unloads, and a heap the parsed documents left fragmented,
which ``gc`` and ``malloc_trim`` cannot return). A sidecar never parses YAML: the operator
compiles and pushes. Standalone mode does the same split inside one command at start: a child
process (``spawn``, so it shares nothing with the gateway) loads, validates, compiles and signs
with the run's key, and hands back only the signed bundle. The gateway installs it through the
verification path a pushed bundle takes and holds what a sidecar holds. A later reload of the
directory (``reload.py``) compiles the same way.

Errors keep their text: the child renders a :class:`~remit.errors.RemitError` and the parent
raises it again as :class:`~remit.errors.CompileError` (the CLI prints the message).
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from joserfc.jwk import OKPKey

from remit.errors import CompileError, RemitError


def _child(
    dirs: tuple[Path, ...], server: str, namespace: str | None, serial: int, key: str
) -> tuple[bool, str, str]:
    """Compile and sign in the child: ``(True, JWS, namespace/name)`` or ``(False, error, "")``
    (a RemitError with custom arguments does not survive pickling)."""
    from remit.gateway.reload import compile_dirs  # noqa: PLC0415
    from remit.policy.signing import load_key, sign  # noqa: PLC0415

    try:
        bundle = compile_dirs(dirs, server, namespace, serial)
        token = sign(bundle, load_key(key))
    except RemitError as exc:
        return False, str(exc), ""
    return True, token, f"{bundle.server.namespace}/{bundle.server.name}"


def compile_in_child(
    dirs: tuple[Path, ...], server: str, namespace: str | None, serial: int, key: OKPKey
) -> tuple[str, str]:
    """Compile ``dirs`` for ``server`` in a child process and sign with ``key``; return the JWS
    and the server (``namespace/name``). Raises :class:`CompileError` with the child's error."""
    private = json.dumps(key.as_dict(private=True))
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        ok, token, ref = pool.apply(_child, (dirs, server, namespace, serial, private))
    if not ok:
        raise CompileError(token)
    return token, ref
