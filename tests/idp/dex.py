"""A real Dex on loopback, configured exactly as docs/identity.md's Dex recipe says.

The recipe's two YAML blocks (Dex's configuration and the MCPServer's ``authentication``) are
read from the page itself, marked by ``<!-- dex-config`` and ``<!-- dex-authentication``
comments, so the documentation cannot drift from what is tested. Only the example host names
change: the issuer ``https://dex.example.com`` becomes Dex's random loopback port, the MCP
server's URL ``https://files.example.com/mcp`` becomes the gateway's, and Dex listens on
127.0.0.1 instead of every interface.

``scripts/dex.py`` builds the binary (``make dex``). Tokens come from Dex's token endpoint
with the password grant, as the recipe's ``curl`` does.
"""

from __future__ import annotations

import base64
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.stack import HOST, REPO, Process

sys.path.insert(0, str(REPO / "scripts"))
import dex as installer

RECIPE = REPO / "docs" / "identity.md"
EXAMPLE_ISSUER_HOST = "https://dex.example.com"
EXAMPLE_SERVER = "https://files.example.com/mcp"
AGENT = "travel-agent"
AGENT_SECRET = "travel-agent-secret"
PASSWORDS = {"alice@example.com": "alice-password", "bob@example.com": "bob-password"}


def recipe_block(marker: str) -> str:
    """The fenced YAML block right after the ``<!-- marker`` comment in docs/identity.md."""
    text = RECIPE.read_text()
    found = re.search(rf"<!-- {re.escape(marker)}\b[^\n]*-->\n```yaml\n(.*?)\n```", text, re.S)
    if found is None:
        raise LookupError(f"docs/identity.md has no ```yaml block after <!-- {marker}")
    return found.group(1)


def subject_of(user_id: str, connector: str = "local") -> str:
    """Dex's ``sub``: base64url (unpadded) protobuf of user id (field 1) and connector (2)."""

    def field(number: int, value: str) -> bytes:
        data = value.encode()
        return bytes([number << 3 | 2, len(data)]) + data

    encoded = field(1, user_id) + field(2, connector)
    return base64.urlsafe_b64encode(encoded).rstrip(b"=").decode()


class DexError(RuntimeError):
    """Dex answered something a test did not expect; the message carries the answer."""


@dataclass
class Dex:
    """A running Dex whose configuration is the recipe's, for the MCP server at ``audience``."""

    process: Process
    port: int
    config: dict[str, Any]
    audience: str

    @property
    def issuer(self) -> str:
        return str(self.config["issuer"])

    def users(self) -> dict[str, dict[str, Any]]:
        """The recipe's static users by email."""
        return {u["email"]: u for u in self.config["staticPasswords"]}

    def password_token(self, email: str, *, audience: bool = True) -> str:
        """An access token for ``email`` obtained by the agent with the password grant,
        asking for the MCP server's audience unless ``audience`` is false."""
        scope = "openid groups"
        if audience:
            scope += f" audience:server:client_id:{self.audience}"
        answer = httpx.post(
            f"{self.issuer}/token",
            auth=(AGENT, AGENT_SECRET),
            data={
                "grant_type": "password",
                "username": email,
                "password": PASSWORDS[email],
                "scope": scope,
            },
            timeout=15,
        )
        if answer.status_code != 200:
            raise DexError(f"token endpoint answered {answer.status_code}: {answer.text[:500]}")
        return str(answer.json()["access_token"])

    def stop(self) -> None:
        self.process.stop()

    @classmethod
    def start(cls, log_dir: Path, *, port: int, audience: str) -> Dex:
        """Run the installed Dex with the recipe's configuration on loopback ``port``."""
        text = recipe_block("dex-config")
        text = text.replace(EXAMPLE_ISSUER_HOST, f"http://{HOST}:{port}")
        text = text.replace(EXAMPLE_SERVER, audience)
        config = yaml.safe_load(text)
        config["web"]["http"] = f"{HOST}:{port}"
        path = log_dir / "dex-config.yaml"
        path.write_text(yaml.safe_dump(config))
        argv = [str(installer.binary()), "serve", str(path)]
        process = Process.start(f"dex-{port}", argv, log_dir)
        try:
            process.wait_for_port(port)
        except BaseException:
            process.stop()
            raise
        return cls(process, port, config, audience)


def server_yaml(port: int, audience: str) -> str:
    """The MCPServer ``files`` with the recipe's ``authentication`` block for the Dex on
    ``port`` and the gateway at ``audience``."""
    block = recipe_block("dex-authentication")
    block = block.replace(EXAMPLE_ISSUER_HOST, f"http://{HOST}:{port}")
    block = block.replace(EXAMPLE_SERVER, audience)
    spec = "\n".join(f"  {line}" for line in block.splitlines())
    return (
        "apiVersion: remit.dev/v1alpha1\n"
        "kind: MCPServer\n"
        "metadata: {name: files, namespace: agents}\n"
        "spec:\n"
        "  selector: {matchLabels: {app: files}}\n"
        f"{spec}\n"
    )
