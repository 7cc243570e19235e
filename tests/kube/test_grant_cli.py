"""`remit grant` against the real API server: grantedBy is who the API server says you are.

The command runs as users run it (the console script, a kubeconfig) and learns its username
with a SelfSubjectReview; the grant it creates, revokes and lists is the one stored.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.kube.cluster import namespace
from tests.kube.controlplane import ControlPlane
from tests.kube.operator import Installation

REMIT = [sys.executable, "-m", "remit"]


def remit(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*REMIT, "grant", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "KUBECONFIG": str(kubeconfig),
            "PATH": "/usr/bin:/bin",
            "HOME": str(kubeconfig.parent),
        },
        check=False,
    )


def test_grant_create_revoke_list_through_the_api_with_the_authenticated_user(
    control_plane: ControlPlane, installation: Installation, tmp_path: Path
) -> None:
    config = control_plane.kubeconfig(tmp_path / "kubeconfig")
    api = control_plane.admin
    with namespace(api, "grant-cli") as ns:
        created = remit(
            config, "create", "alice-write", "-n", ns, "--subject", "alice@example.com",
            "--agent", "support-bot", "--server", "files", "--tool", "write_file",
            "--expires-in", "8h", "--reason", "T-1",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        assert "grantedBy 'admin'" in created.stdout
        stored = api.get("remit.dev/v1alpha1", "ConsentGrant", ns, "alice-write")
        assert stored["spec"]["grantedBy"] == "admin"  # the client certificate's CN
        assert stored["spec"]["tools"] == ["write_file"]

        forged = remit(
            config, "create", "x", "-n", ns, "--subject", "a", "--agent", "b", "--server", "s",
            "--tool", "t", "--expires-in", "1h", "--granted-by", "someone-else",
        )  # fmt: skip
        assert forged.returncode == 2
        assert "in a cluster, grantedBy is who you are" in forged.stderr

        revoked = remit(config, "revoke", "alice-write", "-n", ns)
        assert revoked.returncode == 0, revoked.stderr
        listed = remit(config, "list", "-n", ns, "-o", "json")
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)
        assert [(r["name"], r["phase"], r["grantedBy"]) for r in rows] == [
            ("alice-write", "Revoked", "admin")
        ]

        missing = remit(config, "revoke", "nope", "-n", ns)
        assert missing.returncode == 1
        assert "cannot revoke ConsentGrant" in missing.stderr
        assert "404" in missing.stderr


def test_without_n_the_grant_commands_use_the_kubeconfig_contexts_namespace(
    control_plane: ControlPlane, installation: Installation, tmp_path: Path
) -> None:
    config = control_plane.kubeconfig(tmp_path / "kubeconfig")
    api = control_plane.admin
    with namespace(api, "grant-ctx") as ns:
        document = yaml.safe_load(config.read_text())
        document["contexts"][0]["context"]["namespace"] = ns  # as `kubectl config set-context`
        config.write_text(yaml.safe_dump(document))

        created = remit(
            config, "create", "bob-read", "--subject", "bob@example.com",
            "--agent", "support-bot", "--server", "files", "--tool", "read_file",
            "--expires-in", "1h",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        assert f"consentgrant {ns}/bob-read created" in created.stdout
        assert api.get("remit.dev/v1alpha1", "ConsentGrant", ns, "bob-read") is not None
        assert api.get("remit.dev/v1alpha1", "ConsentGrant", "default", "bob-read") is None

        listed = remit(config, "list", "-o", "json")
        assert listed.returncode == 0, listed.stderr
        assert [(r["namespace"], r["name"]) for r in json.loads(listed.stdout)] == [
            (ns, "bob-read")
        ]
        revoked = remit(config, "revoke", "bob-read")
        assert revoked.returncode == 0, revoked.stderr
        stored = api.get("remit.dev/v1alpha1", "ConsentGrant", ns, "bob-read")
        assert stored["spec"]["revoked"] is True
