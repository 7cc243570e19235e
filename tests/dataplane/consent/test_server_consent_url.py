"""``spec.consent.url``: an MCPServer may name its own consent service. It must be https (plain
http only to loopback, for development), is compiled into the bundle, and the gateway links
that server's consent requests there rather than to its configured consent service."""

from __future__ import annotations

import pytest

from remit.api.loader import parse
from remit.errors import RemitError
from remit.gateway.consent import ConsentLinks
from remit.policy.consentrequest import new_key
from tests.dataplane.consent.test_requests import _request
from tests.support.policies import bundle_for, server


@pytest.mark.parametrize(
    "url",
    [
        "https://consent.team-a.example.com",
        "https://consent.example.com:8443/remit",
        "http://localhost:8080",
        "http://127.0.0.1:9000/consent-base",
        "http://[::1]:8080",
    ],
)
def test_https_or_loopback_http_is_accepted(url: str) -> None:
    assert bundle_for(server(consent={"url": url})).server.consent_url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://consent.example.com",  # plain http off loopback
        "http://127.0.0.1.evil.example",  # looks like loopback, is not
        "https://consent.example.com/?next=x",  # the link appends its own query
        "https://consent.example.com/#top",
        "https://user@consent.example.com",  # user info
        "javascript:alert(1)",
        "https://",
        "ftp://consent.example.com",
    ],
)
def test_anything_else_is_refused(url: str) -> None:
    with pytest.raises(RemitError, match=r"spec\.consent\.url"):
        parse(server(consent={"url": url}))


def test_unset_the_bundle_names_none() -> None:
    assert bundle_for(server()).server.consent_url is None


def test_the_link_goes_to_the_servers_own_consent_service() -> None:
    links = ConsentLinks("https://consent.example.com", new_key())
    request = _request()
    own = links.url_for(request, "https://consent.team-a.example.com/")
    assert own.startswith("https://consent.team-a.example.com/consent?r=")
    assert links.url_for(request).startswith("https://consent.example.com/consent?r=")
