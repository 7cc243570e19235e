"""A real Keycloak on loopback for the identity-provider tier, and the calls a test makes to it.

``Keycloak.start`` runs the server that ``scripts/keycloak.py`` installed and built, with
``kc.sh start --optimized`` on a copy of the database template into which that script
imported the realm file of this folder (``realm-remit.json``), so every session starts from
the same state without paying for schema creation and import. The gateway's audience differs
per session (its port): the template holds a placeholder, which the session replaces through
the admin REST API. HTTP listens on a random port of 127.0.0.1; nothing else listens (local
caches, no management interface).

The helpers speak to Keycloak as real clients do: ``login`` drives the browser part of the
authorization code flow (GET the authorization URL, POST the login form with the user's
password, read the ``code`` from the redirect) with ``httpx``, ``exchange`` is an RFC 8693
token exchange by a confidential client, ``rotate_signing_key`` uses the admin REST API.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import orjson

from tests.support.stack import HOST, REPO, Process, ProcessError

sys.path.insert(0, str(REPO / "scripts"))
import keycloak as installer

REALM = "remit"
ADMIN_CLIENT = "remit-admin"
ADMIN_SECRET = "remit-admin-secret"
REALM_FILE = Path(__file__).with_name("realm-remit.json")
CLIENT = "remit-mcp-client"
REDIRECT_URI = "http://127.0.0.1/callback"
AGENT = "agent-travel"
AGENT_SECRET = "agent-travel-secret"
USERS = {"alice": "alice-password", "bob": "bob-password"}
#: The users' ids (``sub``), fixed in the realm file.
SUBJECTS = {
    "alice": "0b9a3c52-4d1e-4f0a-9c1b-a11ce0000001",
    "bob": "0b9a3c52-4d1e-4f0a-9c1b-b0b000000002",
}
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
_FORM_ACTION = re.compile(r'<form[^>]*\bid="kc-form-login"[^>]*\baction="([^"]+)"', re.S)


def issuer_for(port: int) -> str:
    """The issuer of realm ``remit`` of a Keycloak on ``port``."""
    return f"http://{HOST}:{port}/realms/{REALM}"


class KeycloakError(RuntimeError):
    """Keycloak answered something a test did not expect; the message carries the answer."""


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def submit_login(authorization_url: str, username: str) -> dict[str, str]:
    """Play the user's browser: open ``authorization_url``, post the login form with the
    password of ``username``, and return the query of the redirect back to the client
    (``code``, ``state``, ``iss``)."""
    with httpx.Client(timeout=20, follow_redirects=False) as browser:
        page = browser.get(authorization_url)
        if page.status_code != 200:
            raise KeycloakError(
                f"authorization page {authorization_url}: HTTP {page.status_code} "
                f"{page.headers.get('location', '')} {page.text[:500]}"
            )
        found = _FORM_ACTION.search(page.text)
        if found is None:
            raise KeycloakError(f"no login form on the authorization page: {page.text[:500]}")
        action = html.unescape(found.group(1))
        form = {"username": username, "password": USERS[username], "credentialId": ""}
        # Keycloak's session cookies are ``Secure``; browsers send them to http://127.0.0.1
        # (a secure context), httpx's cookie jar does not, so they are sent explicitly.
        cookies = "; ".join(f"{c.name}={c.value}" for c in page.cookies.jar)
        answer = browser.post(action, data=form, headers={"cookie": cookies})
        location = answer.headers.get("location", "")
        if answer.status_code != 302 or not location.startswith(REDIRECT_URI):
            raise KeycloakError(f"login: HTTP {answer.status_code} to {location!r}")
    query = parse_qs(urlsplit(location).query)
    return {name: values[0] for name, values in query.items()}


def _group_gone(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return True
    return False


@dataclass
class Keycloak:
    """A running Keycloak: its process, port and realm ``remit``."""

    process: Process
    port: int
    started_in: float  # seconds from kc.sh start to the realm's discovery document

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def issuer(self) -> str:
        return issuer_for(self.port)

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/token"

    @classmethod
    def start(cls, log_dir: Path, audience: str, port: int, timeout: float = 180.0) -> Keycloak:
        """Start Keycloak with the realm imported; return once its discovery document is
        served (``ProcessError`` with the log if it dies or takes longer than ``timeout``)."""
        home = installer.home()
        template = installer.prepare_realm(REALM_FILE)  # made by `make keycloak`, else now
        database = log_dir / "keycloak-db"
        shutil.copytree(template / "data", database / "data")
        env = {
            "JAVA_HOME": str(installer.java_home()),
            # Start fast on two cores: C1 only and a serial collector.
            "JAVA_OPTS": " ".join(
                (
                    "-XX:MetaspaceSize=96M",
                    "-XX:MaxMetaspaceSize=256m",
                    "-Xms64m",
                    "-Xmx768m",
                    "-Dfile.encoding=UTF-8",
                    "-XX:+ExitOnOutOfMemoryError",
                    "-Djava.security.egd=file:/dev/urandom",
                    "-XX:+UseSerialGC",
                    "-XX:TieredStopAtLevel=1",
                    f"-Dkc.db-url-path={database}",  # the copy of the database template
                )
            ),
        }
        argv = [
            str(home / "bin" / "kc.sh"),
            "start",
            "--optimized",
            "--http-enabled=true",
            f"--http-host={HOST}",
            f"--http-port={port}",
            "--hostname-strict=false",
            "--cache=local",
            "--log-level=" + os.environ.get("REMIT_KEYCLOAK_LOG_LEVEL", "warn"),
        ]
        began = time.monotonic()
        # Its own process group: kc.sh runs java as a child, and stop() ends both.
        with (log_dir / "keycloak.stdout").open("wb") as stdout:  # Keycloak logs to stdout
            process = Process.start(
                "keycloak", argv, log_dir, env=env, stdout=stdout, preexec_fn=os.setsid
            )
        keycloak = cls(process, port, 0.0)
        try:
            process.wait_for_port(port, timeout=timeout)
            keycloak._wait_for_realm(began + timeout)
            keycloak.started_in = time.monotonic() - began
            keycloak.set_audience(audience)
        except BaseException:
            keycloak.stop()
            raise
        return keycloak

    def _wait_for_realm(self, deadline: float) -> None:
        url = f"{self.issuer}/.well-known/openid-configuration"
        while True:
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.popen.poll() is not None or time.monotonic() > deadline:
                log = self.process.log.with_name("keycloak.stdout").read_text(errors="replace")
                raise ProcessError(
                    f"keycloak never served {url}:\n{self.process.stderr()}\n{log[-3000:]}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """End kc.sh and java (the session's copy of the database is thrown away, so nothing
        needs an orderly shutdown): TERM to the process group, then KILL what is left."""
        popen = self.process.popen
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(grace)
                if sig == signal.SIGKILL or _group_gone(popen.pid):
                    return

    # --- tokens -----------------------------------------------------------------------------

    def login(self, username: str, scope: str = "mcp:tools") -> dict[str, Any]:
        """The token response for ``username`` logging in at the MCP client (authorization code
        with PKCE, the login form filled in as a browser would)."""
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(16)
        query = {
            "response_type": "code",
            "client_id": CLIENT,
            "redirect_uri": REDIRECT_URI,
            "scope": scope,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        redirect = submit_login(
            f"{self.issuer}/protocol/openid-connect/auth?{urlencode(query)}", username
        )
        if redirect.get("state") != state or "code" not in redirect:
            raise KeycloakError(f"unexpected redirect: {redirect}")
        form = {
            "grant_type": "authorization_code",
            "client_id": CLIENT,
            "code": redirect["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        }
        return self._token(form)

    def exchange(self, subject_token: str, scope: str = "mcp:tools") -> dict[str, Any]:
        """RFC 8693: the agent client trades a user's access token for one of its own."""
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": subject_token,
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "requested_token_type": ACCESS_TOKEN_TYPE,
            "scope": scope,
        }
        return self._token(form, auth=(AGENT, AGENT_SECRET))

    def _token(self, form: dict[str, str], auth: tuple[str, str] | None = None) -> dict[str, Any]:
        answer = httpx.post(self.token_endpoint, data=form, auth=auth, timeout=20)
        if answer.status_code != 200:
            raise KeycloakError(f"token endpoint: HTTP {answer.status_code}: {answer.text[:500]}")
        document: dict[str, Any] = answer.json()
        return document

    # --- administration ---------------------------------------------------------------------

    def _admin(self) -> httpx.Client:
        """The admin REST API of realm ``remit``, as its ``remit-admin`` service account."""
        answer = httpx.post(
            self.token_endpoint,
            data={"grant_type": "client_credentials"},
            auth=(ADMIN_CLIENT, ADMIN_SECRET),
            timeout=20,
        )
        if answer.status_code != 200:
            raise KeycloakError(f"admin token: HTTP {answer.status_code}: {answer.text[:500]}")
        token = answer.json()["access_token"]
        return httpx.Client(
            base_url=f"{self.base}/admin/realms/{REALM}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=20,
        )

    def set_audience(self, audience: str) -> None:
        """Point the realm's "gateway audience" mappers at ``audience`` (the template holds a
        placeholder: the gateway's port differs per session)."""
        changed = 0
        with self._admin() as admin:
            for client in admin.get("/clients").raise_for_status().json():
                mappers = f"/clients/{client['id']}/protocol-mappers/models"
                for mapper in admin.get(mappers).raise_for_status().json():
                    if mapper["name"] != "gateway audience":
                        continue
                    mapper["config"]["included.custom.audience"] = audience
                    admin.put(f"{mappers}/{mapper['id']}", json=mapper).raise_for_status()
                    changed += 1
        if changed != 2:
            raise KeycloakError(f"expected two 'gateway audience' mappers, changed {changed}")

    def signing_kids(self) -> list[str]:
        """The key ids the realm publishes for RS256 signatures, as its JWKS lists them."""
        jwks = httpx.get(f"{self.issuer}/protocol/openid-connect/certs", timeout=10).json()
        return [k["kid"] for k in jwks["keys"] if k.get("alg") == "RS256" and k.get("use") == "sig"]

    def rotate_signing_key(self) -> tuple[str, str]:
        """Add a new RS256 key with a higher priority (so it signs from now on), then remove
        the key that signed until now. Returns (old kid, new kid)."""
        with self._admin() as admin:
            keys = admin.get("/keys").raise_for_status().json()
            active = [
                k
                for k in keys["keys"]
                if k["algorithm"] == "RS256" and k["status"] == "ACTIVE" and k["use"] == "SIG"
            ]
            if len(active) != 1:
                raise KeycloakError(f"expected one active RS256 key, found {active}")
            old = active[0]
            realm_id = admin.get("").raise_for_status().json()["id"]
            component = {
                "name": f"rotated-{secrets.token_hex(4)}",
                "providerId": "rsa-generated",
                "providerType": "org.keycloak.keys.KeyProvider",
                "parentId": realm_id,
                "config": {
                    "priority": [str(int(old["providerPriority"]) + 100)],
                    "keySize": ["2048"],
                    "active": ["true"],
                    "enabled": ["true"],
                    "algorithm": ["RS256"],
                },
            }
            admin.post("/components", json=component).raise_for_status()
            keys = admin.get("/keys").raise_for_status().json()
            new = [
                k
                for k in keys["keys"]
                if k["algorithm"] == "RS256" and k["providerId"] != old["providerId"]
            ]
            if len(new) != 1:
                raise KeycloakError(f"the new key is not listed: {keys['keys']}")
            admin.delete(f"/components/{old['providerId']}").raise_for_status()
        return old["kid"], new[0]["kid"]


def _segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    document: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return document


def token_header(token: str) -> dict[str, Any]:
    """A JWT's header, read without verification (only to look at what Keycloak issued)."""
    return _segment(token, 0)


def token_claims(token: str) -> dict[str, Any]:
    """A JWT's claims, read without verification (only to look at what Keycloak issued)."""
    return _segment(token, 1)
