"""`remit consent` run the way the chart's consent Deployment runs it, and a human using it.

``ConsentProcess`` takes the rendered consent Deployment's container (its args and env, exactly)
and runs ``remit <args>`` as its own process, authenticated as the chart's consent
ServiceAccount through a kubeconfig holding a TokenRequest token (so its permissions are the
chart's ClusterRole for it). What differs from a pod, and why: it listens on a random loopback
address (``REMIT_CONSENT_LISTEN`` keeps the rendered port, the host is loopback: tests run side
by side), and the Secret volumes are folders the harness writes from the Secrets in the API
server, as the kubelet would project them (``/etc/remit/...`` → that folder).

``approve`` is a human with an HTTP client (``tests/support/human.py``): open the link, sign
in at the test issuer (the authorization code + PKCE flow the page starts), and press Approve.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.kube.controlplane import random_host
from tests.kube.operator import NAMESPACE, REMIT, Installation, service_account_token
from tests.support.human import Browser, durations, form_fields
from tests.support.ports import free_port

MOUNTS = "/etc/remit/"


def consent_values() -> dict[str, Any]:
    """Chart values turning the consent service on, at a loopback address of its own."""
    host = random_host()
    port = free_port(host)
    return {"enabled": True, "publicUrl": f"http://{host}:{port}", "port": port}


@dataclass
class ConsentProcess:
    """``remit consent`` with the consent Deployment's args and env, as its ServiceAccount."""

    install: Installation
    folder: Path
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def deployment(self) -> dict[str, Any]:
        hits = [
            o
            for o in self.install.objects
            if o["kind"] == "Deployment"
            and o["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component")
            == "consent"
        ]
        assert len(hits) == 1, "the chart rendered no consent Deployment"
        return hits[0]

    @property
    def container(self) -> dict[str, Any]:
        containers: list[dict[str, Any]] = self.deployment["spec"]["template"]["spec"]["containers"]
        return next(c for c in containers if c["name"] == "consent")

    @property
    def public_url(self) -> str:
        return self.env["REMIT_CONSENT_PUBLIC_URL"]

    def project_secrets(self) -> dict[str, Path]:
        """Each Secret volume written to a folder, as the kubelet projects it (and updates it in
        place when the Secret changes): mount path → folder."""
        pod = self.deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts: dict[str, Path] = {}
        api = self.install.plane.admin
        for mount in self.container["volumeMounts"]:
            secret = volumes[mount["name"]].get("secret")
            if secret is None:
                continue
            found = api.get("v1", "Secret", NAMESPACE, secret["secretName"])
            assert found is not None, f"Secret {secret['secretName']} does not exist"
            folder = self.folder / mount["name"]
            folder.mkdir(parents=True, exist_ok=True)
            for key, value in (found.get("data") or {}).items():
                (folder / key).write_bytes(base64.b64decode(value))
            mounts[mount["mountPath"]] = folder
        return mounts

    def start(self) -> None:
        api = self.install.plane.admin
        account = self.deployment["spec"]["template"]["spec"]["serviceAccountName"]
        kubeconfig = self.folder / "kubeconfig"
        token = service_account_token(api, NAMESPACE, account)
        self.install.plane.kubeconfig(kubeconfig, token=token)
        mounts = self.project_secrets()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REMIT_", "KUBE"))}
        env["KUBECONFIG"] = str(kubeconfig)
        for item in self.container["env"]:
            value = str(item["value"])
            for path, folder in mounts.items():
                value = value.replace(path, str(folder))
            assert not value.startswith(MOUNTS), f"{item['name']}: {value} is not mounted"
            env[item["name"]] = value
        port = env["REMIT_CONSENT_LISTEN"].rpartition(":")[2]
        env["REMIT_CONSENT_LISTEN"] = f"{urlsplit(env['REMIT_CONSENT_PUBLIC_URL']).hostname}:{port}"
        self.env = env
        log = open(self.folder / "consent.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [REMIT, *self.container["args"]], env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout: float = 30) -> None:
        """The readinessProbe: ``/readyz`` answers 200."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.public_url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc is None or self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"consent service not ready:\n{self.logs()}")
            time.sleep(0.1)

    def logs(self) -> str:
        path = self.folder / "consent.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def approve(link: str, subject: str, public_url: str) -> httpx.Response:
    """``subject`` opens ``link``, signs in at the issuer and approves for the tool scope."""
    with Browser() as browser:
        page = browser.sign_in(link, subject)
        assert "Approve" in page.text, page.text[:2000]
        answer = {**form_fields(page.text), "answer": "approve", "scope": "tool",
                  "duration": durations(page.text)[0]}  # fmt: skip
        return browser.go(
            "POST", f"{public_url}/consent/answer", data=answer, headers={"Origin": public_url}
        )
