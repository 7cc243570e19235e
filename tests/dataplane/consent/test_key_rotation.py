"""Rotating the consent link key never breaks a link issued before: each link names its key
(``kid``), and the consent service opens it with that key (current, the Secret's ``previous``,
or one it saw superseded within the longest link lifetime) until the link itself expires."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from remit.consent.keys import RECHECK_SECONDS, LinkKeys
from remit.errors import ConsentRequestError, SettingsError
from remit.gateway.settings import ConsentLinkSettings
from remit.policy.consentkeys import MAX_REQUEST_SECONDS, header_kid, key_id
from remit.policy.consentrequest import ConsentSealer, new_key
from remit.settings import load
from tests.dataplane.consent.test_requests import NOW, _request


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _write(path: Path, *keys: bytes) -> None:
    path.write_text("\n".join(base64.b64encode(k).decode() for k in keys) + "\n")


def test_a_link_names_its_key_and_opens_only_with_that_key() -> None:
    old, new = new_key(), new_key()
    token = ConsentSealer(old).seal(_request())
    assert header_kid(token) == key_id(old)
    assert ConsentSealer(new, [old]).open(token, NOW).id == "01ABC"
    assert not ConsentSealer(new).knows(token)
    with pytest.raises(ConsentRequestError, match="unknown or retired"):
        ConsentSealer(new).open(token, NOW)


def test_links_sealed_before_a_rotation_open_until_they_expire(tmp_path: Path) -> None:
    key_file, previous_file = tmp_path / "key", tmp_path / "previous"
    old, new = new_key(), new_key()
    _write(key_file, old)
    clock = Clock()
    keys = LinkKeys(key_file, previous_file, clock=clock)  # no `previous` yet: absent is none
    before = ConsentSealer(old).seal(_request(expires_at=NOW + 900))
    assert keys.open(before, NOW).id == "01ABC"
    # The Secret is rotated (the kubelet rewrites the mounted files): new key, old as previous.
    _write(key_file, new)
    _write(previous_file, old)
    after = ConsentSealer(new).seal(_request(id="01NEW", expires_at=NOW + 900))
    clock.now += RECHECK_SECONDS
    assert keys.open(after, NOW).id == "01NEW"  # an unknown kid makes it re-read the files
    assert keys.open(before, NOW + 899).id == "01ABC"
    with pytest.raises(ConsentRequestError, match="expired"):
        keys.open(before, NOW + 900)
    # A restarted consent service reads both keys from the files.
    assert LinkKeys(key_file, previous_file).open(before, NOW).id == "01ABC"


def test_a_superseded_key_is_kept_for_the_longest_link_lifetime_then_retired(
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "key"
    old, new = new_key(), new_key()
    _write(key_file, old)
    clock = Clock()
    keys = LinkKeys(key_file, tmp_path / "previous", clock=clock)
    before = ConsentSealer(old).seal(_request(expires_at=NOW + MAX_REQUEST_SECONDS))
    _write(key_file, new)  # rotated without `previous`
    clock.now += RECHECK_SECONDS
    keys.reload()
    assert keys.open(before, NOW).id == "01ABC"  # kept in memory
    clock.now += MAX_REQUEST_SECONDS
    keys.reload()
    with pytest.raises(ConsentRequestError, match="unknown or retired"):
        keys.open(before, NOW)


def test_the_key_files_are_re_read_at_most_every_recheck_interval(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    _write(key_file, new_key())
    clock = Clock()
    keys = LinkKeys(key_file, None, clock=clock)
    newer = new_key()
    _write(key_file, newer)
    forged = ConsentSealer(newer).seal(_request())
    with pytest.raises(ConsentRequestError):
        keys.open(forged, NOW)  # within RECHECK_SECONDS of the last read: not re-read
    clock.now += RECHECK_SECONDS
    assert keys.open(forged, NOW).id == "01ABC"


def test_a_link_living_longer_than_the_maximum_is_refused() -> None:
    key = new_key()
    token = ConsentSealer(key).seal(_request(expires_at=NOW + MAX_REQUEST_SECONDS + 1))
    with pytest.raises(ConsentRequestError, match="lives too long"):
        ConsentSealer(key).open(token, NOW)


def test_a_gateway_cannot_issue_links_outliving_a_rotated_key() -> None:
    with pytest.raises(SettingsError, match="REMIT_CONSENT_REQUEST_SECONDS"):
        load(ConsentLinkSettings, {"REMIT_CONSENT_REQUEST_SECONDS": "3601"})


def test_a_bad_previous_key_file_is_named(tmp_path: Path) -> None:
    key_file, previous_file = tmp_path / "key", tmp_path / "previous"
    _write(key_file, new_key())
    previous_file.write_text("not-a-key\n")
    with pytest.raises(SettingsError, match="REMIT_CONSENT_PREVIOUS_KEY_FILE"):
        LinkKeys(key_file, previous_file)
