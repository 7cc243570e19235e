"""``spec.consent.url``: an MCPServer may name its own consent service. It must be https (plain
http only to loopback, for development), is compiled into the bundle, and the gateway links
that server's consent requests there rather than to its configured consent service."""

from __future__ import annotations

import pytest

from remit.api.loader import parse
from remit.errors import BundleError, RemitError
from remit.gateway.consent import ConsentLinks
from remit.policy.bundle import BUNDLE_WIRE, parse_bundle
from remit.policy.compiler import compile_bundle
from remit.policy.consentrequest import new_key
from remit.policy.wire import later_fields
from tests.dataplane.compat.v1 import schema as v1
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


def test_unset_the_bundle_is_as_format_1_wrote_it() -> None:
    bundle = compile_bundle([parse(server())], "files")
    assert bundle.server.consent_url is None
    assert "consentUrl" not in bundle.document()["server"]
    assert v1.parse_bundle(bundle.canonical()).digest == bundle.digest  # an older sidecar too


def test_set_it_is_written_signed_and_refused_by_an_older_sidecar() -> None:
    url = "https://consent.team-a.example.com"
    bundle = compile_bundle([parse(server(consent={"url": url}))], "files")
    assert bundle.document()["server"]["consentUrl"] == url
    assert parse_bundle(bundle.canonical()).server.consent_url == url
    assert "ServerSettings.consentUrl" in later_fields([BUNDLE_WIRE])  # sidecars advertise it
    with pytest.raises(BundleError, match="unknown field `consentUrl`"):
        v1.parse_bundle(bundle.canonical())  # never linked to the default consent service


def test_the_link_goes_to_the_servers_own_consent_service() -> None:
    links = ConsentLinks("https://consent.example.com", new_key())
    request = _request()
    own = links.url_for(request, "https://consent.team-a.example.com/")
    assert own.startswith("https://consent.team-a.example.com/consent?r=")
    assert links.url_for(request).startswith("https://consent.example.com/consent?r=")
