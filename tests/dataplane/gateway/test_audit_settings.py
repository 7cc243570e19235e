"""The audit write timeout, queue bound and durability mode from the sidecar's environment."""

from __future__ import annotations

import pytest

from remit.audit.writer import DEFAULT_QUEUE_BYTES
from remit.gateway.settings import SettingsError, from_environment


def test_audit_timeout_and_queue_bound_come_from_the_environment() -> None:
    settings = from_environment({"REMIT_AUDIT_TIMEOUT": "0.5", "REMIT_AUDIT_QUEUE_BYTES": "4096"})
    assert (settings.audit.timeout, settings.audit.max_queue_bytes) == (0.5, 4096)
    defaults = from_environment({})
    assert (defaults.audit.timeout, defaults.audit.max_queue_bytes) == (5.0, DEFAULT_QUEUE_BYTES)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"REMIT_AUDIT_TIMEOUT": "soon"}, "REMIT_AUDIT_TIMEOUT"),
        ({"REMIT_AUDIT_TIMEOUT": "nan"}, "positive and finite"),
        ({"REMIT_AUDIT_TIMEOUT": "0"}, "positive and finite"),
        ({"REMIT_AUDIT_QUEUE_BYTES": "lots"}, "REMIT_AUDIT_QUEUE_BYTES"),
        ({"REMIT_AUDIT_QUEUE_BYTES": "0"}, "queue size must be positive"),
        ({"REMIT_AUDIT_FSYNC_STRICT": "maybe"}, "REMIT_AUDIT_FSYNC_STRICT"),
        ({"REMIT_AUDIT_SYNC_DELAY": "-1"}, "sync delay"),
        (
            {"REMIT_AUDIT_SINK": "file", "REMIT_AUDIT_FILE": "/a", "REMIT_AUDIT_SYNC_DELAY": "10"},
            r"REMIT_AUDIT_SYNC_DELAY \(10s\) must be less than REMIT_AUDIT_TIMEOUT \(5s\)",
        ),
    ],
)
def test_bad_audit_settings_are_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        from_environment(env)


def test_durability_modes_come_from_the_environment() -> None:
    defaults = from_environment({}).audit
    assert (defaults.fsync, defaults.fsync_wait, defaults.fsync_strict) == (True, True, False)
    assert defaults.sync_delay == 0.05
    strict = from_environment({"REMIT_AUDIT_FSYNC_STRICT": "true"}).audit
    assert strict.fsync_strict
    behind = from_environment({"REMIT_AUDIT_FSYNC_WAIT": "false"}).audit
    assert not behind.fsync_wait
    assert from_environment({"REMIT_AUDIT_SYNC_DELAY": "0.2"}).audit.sync_delay == 0.2


@pytest.mark.parametrize(
    "env",
    [
        {},  # stdout
        {"REMIT_AUDIT_SINK": "file", "REMIT_AUDIT_FILE": "/a", "REMIT_AUDIT_FSYNC": "false"},
        {"REMIT_AUDIT_SINK": "file", "REMIT_AUDIT_FILE": "/a", "REMIT_AUDIT_FSYNC_WAIT": "false"},
        {"REMIT_AUDIT_SINK": "file", "REMIT_AUDIT_FILE": "/a", "REMIT_AUDIT_FSYNC_STRICT": "true"},
    ],
)
def test_a_short_timeout_is_refused_only_where_the_sync_delay_is_used(env: dict[str, str]) -> None:
    """The sync delay (50 ms by default) only matters where answers wait for sync points."""
    assert from_environment({**env, "REMIT_AUDIT_TIMEOUT": "0.05"}).audit.timeout == 0.05
    default_file = {"REMIT_AUDIT_SINK": "file", "REMIT_AUDIT_FILE": "/a"}
    with pytest.raises(SettingsError, match=r"REMIT_AUDIT_SYNC_DELAY.*REMIT_AUDIT_TIMEOUT"):
        from_environment({**default_file, "REMIT_AUDIT_TIMEOUT": "0.05"})
