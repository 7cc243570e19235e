"""The consent page as a web application: what every answer says to the browser, cookies,
CSRF, forged links and redirects — over HTTP against the running standalone gateway's page."""

from __future__ import annotations

import httpx
import pytest

from remit.consent.security import check_csrf, safe_path
from remit.errors import ConsentRequestError
from tests.consent.conftest import Loop
from tests.consent.test_consent_loop import denied_with_link


def test_every_answer_forbids_framing_scripts_sniffing_referrers_and_caching(loop: Loop) -> None:
    answer = httpx.get(f"{loop.consent_url}/consent", params={"r": "forged"}, timeout=10)
    assert answer.status_code == 400
    assert "not a consent request issued by this gateway" in answer.text
    csp = answer.headers["content-security-policy"]
    for directive in ("default-src 'none'", "frame-ancestors 'none'", "form-action 'self'"):
        assert directive in csp
    assert "script-src" not in csp  # default-src 'none': no script at all
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "same-origin"
    assert answer.headers["cache-control"] == "no-store"


def test_the_session_cookie_is_httponly_secure_and_samesite(loop: Loop) -> None:
    url, _ = denied_with_link(loop, "/data/alice/cookie.txt")
    answer = httpx.get(url, timeout=10)
    assert (answer.status_code, answer.headers["location"]) == (303, "/login")
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "secure" in cookie
    assert "samesite=lax" in cookie


def test_a_post_without_the_sessions_csrf_token_is_refused(loop: Loop) -> None:
    url, _ = denied_with_link(loop, "/data/alice/csrf.txt")
    token = url.split("r=", 1)[1]
    answer = httpx.post(
        f"{loop.consent_url}/consent/answer",
        data={"r": token, "answer": "approve", "scope": "tool", "duration": "900"},
        timeout=10,
    )
    assert answer.status_code == 403
    assert "did not come from this page" in answer.text


def test_a_login_callback_without_a_flow_is_refused_cleanly(loop: Loop) -> None:
    answer = httpx.get(f"{loop.consent_url}/callback?code=x&state=y", timeout=10)
    assert answer.status_code == 401
    assert "Login failed" in answer.text


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/", "/\\evil.example", "", None, "x"]
)
def test_redirects_go_only_to_this_sites_paths(target: object) -> None:
    assert safe_path(target) == "/grants"


def test_a_form_from_another_origin_is_refused_even_with_the_token() -> None:
    check_csrf("t", "t", "https://consent.example", "https://consent.example")
    for origin in ("https://evil.example", "null"):
        with pytest.raises(ConsentRequestError):
            check_csrf("t", "t", origin, "https://consent.example")
    with pytest.raises(ConsentRequestError):
        check_csrf("t", "u", None, "https://consent.example")
