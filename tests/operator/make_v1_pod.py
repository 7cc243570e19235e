"""Write ``v1_pod.json``: a pod as the previous release's webhook injected and sealed it.

Run ONCE, with the code of that release (commit cd3fc64, injection seal v1), never with this
branch's (the point is that older code produced it)::

    git archive cd3fc64 | tar -x -C /tmp/remit-v1
    cd /tmp/remit-v1 && PYTHONPATH=operator:dataplane:. \\
        /path/to/.venv/bin/python /path/to/tests/operator/make_v1_pod.py

The signing key is derived from a fixed, public seed (``fixture_key``), so nothing secret is
kept and the tests rebuild the same key with this branch's code.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from joserfc.jwk import OKPKey

from remit.api.mcpserver import MCPServer
from remit_operator.settings import Settings
from remit_operator.webhook import inject
from tests.support.policies import server

HERE = Path(__file__).parent
SERVER_UID = "3c6e6f1e-0000-4000-8000-000000000101"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def fixture_key() -> OKPKey:
    """The Ed25519 key the fixture was sealed with (a test key from a public seed)."""
    seed = hashlib.sha256(b"remit v1 pod fixture, not a secret").digest()
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    x = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    jwk = {"kty": "OKP", "crv": "Ed25519", "d": _b64(seed), "x": _b64(x), "kid": "v1-fixture"}
    return OKPKey.import_key(jwk)


def server_document() -> dict[str, Any]:
    document = server("files")
    document["metadata"]["uid"] = SERVER_UID
    return document


def main() -> None:
    resource = MCPServer.model_validate(server_document())
    pod = {
        "metadata": {"name": "files-1", "namespace": "agents", "labels": {"app": "files-mcp"}},
        "spec": {"containers": [{"name": "files", "image": "files:1"}]},
    }
    injected = inject(pod, resource, Settings(), fixture_key())
    (HERE / "v1_pod.json").write_text(json.dumps(injected, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
