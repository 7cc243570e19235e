"""Standalone hot reload: a changed policy directory is compiled and installed without a
restart; one that no longer compiles leaves the last good bundle in force."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import yaml

from remit.gateway.dirlook import DirectoryLook
from remit.gateway.reload import PolicyReloader, compile_dirs
from remit.gateway.state import PolicyState
from remit.policy.signing import generate_key, public_key, sign
from tests.support.policies import policy, rule, server
from tests.support.stack import write_policy_dir


def _reloader(directory: Path) -> PolicyReloader:
    key = generate_key()
    state = PolicyState(public_key(key), server="agents/files")
    state.install_signed(sign(compile_dirs((directory,), "files", None, 1), key))
    return PolicyReloader((directory,), "files", None, key, state, clock=lambda: 0.002)


def test_a_new_file_is_in_force_on_the_next_look_and_a_broken_one_changes_nothing(
    tmp_path: Path,
) -> None:
    directory = write_policy_dir(tmp_path / "policy", yaml.safe_dump(server()), examples=False)
    reloader = _reloader(directory)
    assert reloader.check() is False  # nothing changed
    assert reloader.state.current is not None
    assert reloader.state.current.bundle.policies == ()
    doc = policy("p", rule("r", tools=["read_file"]), agents=["bot"])
    (directory / "p.yaml").write_text(yaml.safe_dump(doc))
    assert reloader.check() is True
    good = reloader.state.current
    assert good is not None
    assert [p.id for p in good.bundle.policies] == ["agents/p"]
    assert good.bundle.serial == 2  # above the serial in force, whatever the clock says
    (directory / "broken.yaml").write_text("kind: AgentPolicy\napiVersion: remit.dev/v1alpha1\n")
    assert reloader.check() is False
    assert reloader.state.current is good
    assert reloader.failures == 1
    (directory / "broken.yaml").unlink()
    (directory / "p.yaml").unlink()
    assert reloader.check() is True
    assert reloader.state.current.bundle.policies == ()


def _settled(path: Path) -> Callable[[], int]:
    """A clock well past the directory's modification time: its listing is trusted."""
    return lambda: path.stat().st_mtime_ns + 10 * 10**9


def test_a_look_sees_a_file_written_in_place_added_or_removed(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("a: 1\n")
    (tmp_path / "notes.txt").write_text("not policy\n")
    look = DirectoryLook((tmp_path,), clock=_settled(tmp_path))
    assert set(look.seen) == {str(tmp_path / "a.yaml")}
    assert look.changed() is False
    times = tmp_path.stat().st_mtime_ns
    (tmp_path / "a.yaml").write_text("a: 22\n")  # in place: the directory's time is unchanged
    assert tmp_path.stat().st_mtime_ns == times
    assert look.changed() is True
    assert look.changed() is False
    (tmp_path / "notes.txt").write_text("still not policy, written\n")
    assert look.changed() is False
    (tmp_path / "b.yml").write_text("b: 1\n")
    assert look.changed() is True
    (tmp_path / "a.yaml").unlink()
    assert look.changed() is True
    assert set(look.seen) == {str(tmp_path / "b.yml")}
    assert look.small


def test_a_recent_directory_time_is_not_trusted_to_mean_no_new_file(tmp_path: Path) -> None:
    """A file added within the file system's timestamp granularity may leave the directory's
    time as it was: a listing taken while that time was recent is read again next look."""
    (tmp_path / "a.yaml").write_text("a: 1\n")
    look = DirectoryLook((tmp_path,), clock=lambda: tmp_path.stat().st_mtime_ns)  # recent
    stat = tmp_path.stat()
    (tmp_path / "revoked.yaml").write_text("b: 1\n")
    os.utime(tmp_path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the same coarse timestamp
    assert look.changed() is True
    assert str(tmp_path / "revoked.yaml") in look.seen


def test_a_policy_file_as_the_root_is_looked_at_itself(tmp_path: Path) -> None:
    root = tmp_path / "one.yaml"
    root.write_text("a: 1\n")
    look = DirectoryLook((root, tmp_path / "missing"), clock=_settled(tmp_path))
    assert look.changed() is False
    root.write_text("a: 100\n")
    assert look.changed() is True
    (tmp_path / "missing").mkdir()
    (tmp_path / "missing" / "new.yaml").write_text("a: 1\n")
    assert look.changed() is True
