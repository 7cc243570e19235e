"""A signing-key rotation at Keycloak is followed by the running gateway, without a restart.

Keycloak gets a new RS256 key with a higher priority (it signs from then on) and the key that
signed until then is removed. A token signed with the new key is accepted as soon as the
gateway refetches the key set for its unknown ``kid`` (``jwksMinRefreshSeconds: 1`` here);
a token signed with the removed key is refused once the cached key set expires
(``jwksCacheSeconds: 2``). The gateway process is the same throughout.
"""

from __future__ import annotations

import time

import httpx

from tests.idp.keycloak import Keycloak, token_header
from tests.support import mcp_wire
from tests.support.stack import GatewayProcess

READ = {"path": "/data/alice/notes.txt"}


def _status_within(
    gateway: GatewayProcess, token: str, status: int, seconds: float
) -> httpx.Response:
    """Call until the gateway answers ``status`` or ``seconds`` pass (the key set's refresh
    intervals are wall-clock times in another process); the last answer."""
    deadline = time.monotonic() + seconds
    while True:
        answer = mcp_wire.tool_call(gateway.url, "read_file", READ, token=token)
        if answer.status_code == status or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_rotated_signing_key_is_followed_without_restart(
    gateway: GatewayProcess, keycloak: Keycloak
) -> None:
    pid = gateway.process.pid
    before = keycloak.login("alice")["access_token"]
    assert mcp_wire.tool_call(gateway.url, "read_file", READ, token=before).status_code == 200

    old_kid, new_kid = keycloak.rotate_signing_key()
    after = keycloak.login("alice")["access_token"]

    assert token_header(before)["kid"] == old_kid
    assert token_header(after)["kid"] == new_kid != old_kid
    assert keycloak.signing_kids() == [new_kid]
    accepted = _status_within(gateway, after, 200, 10)
    assert accepted.status_code == 200, accepted.text
    refused = _status_within(gateway, before, 401, 10)
    assert refused.status_code == 401, refused.text
    assert f"unknown signing key id {old_kid!r}" in refused.headers["www-authenticate"]
    assert gateway.process.popen.poll() is None
    assert gateway.process.pid == pid
