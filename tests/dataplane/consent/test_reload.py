"""Standalone hot reload: a changed policy directory is compiled and installed without a
restart; one that no longer compiles leaves the last good bundle in force."""

from __future__ import annotations

from pathlib import Path

import yaml

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
