"""The injected gateway's shutdown grace fits inside the pod's terminationGracePeriodSeconds,
so the kubelet's SIGKILL never comes before the gateway has cut its calls off and recorded
their outcomes (docs/gateway.md, "Stopping")."""

from __future__ import annotations

from typing import Any

from joserfc.jwk import OKPKey

from remit.gateway.drain import DEFAULT_GRACE
from remit.gateway.settings import from_environment
from remit_operator.gatewayspec import SHUTDOWN_MARGIN
from remit_operator.settings import Settings
from remit_operator.webhook import inject
from tests.operator.support import app_pod
from tests.operator.test_seal_shape import SERVER

KEY = OKPKey.generate_key("Ed25519", parameters={"kid": "k1"})


def _env(pod: dict[str, Any]) -> dict[str, Any]:
    (gateway,) = [c for c in pod["spec"]["containers"] if c["name"] == "remit-gateway"]
    return {e["name"]: e.get("value") for e in gateway["env"]}


def test_a_pod_with_the_default_termination_grace_keeps_the_gateway_default() -> None:
    env = _env(inject(app_pod("p"), SERVER, Settings(), KEY))
    assert "REMIT_SHUTDOWN_GRACE_SECONDS" not in env
    assert DEFAULT_GRACE + SHUTDOWN_MARGIN <= 30  # Kubernetes' default


def test_a_pod_with_a_shorter_termination_grace_gets_a_shorter_drain() -> None:
    pod = app_pod("p")
    pod["spec"]["terminationGracePeriodSeconds"] = 15
    injected = inject(pod, SERVER, Settings(), KEY)
    env = _env(injected)
    assert env["REMIT_SHUTDOWN_GRACE_SECONDS"] == "5"
    settings = from_environment({"REMIT_SHUTDOWN_GRACE_SECONDS": "5"})
    assert settings.listen.shutdown_grace == 5.0
    assert inject(injected, SERVER, Settings(), KEY) == injected  # its seal covers it


def test_a_termination_grace_below_the_margin_cuts_calls_off_at_once() -> None:
    pod = app_pod("p")
    pod["spec"]["terminationGracePeriodSeconds"] = 3
    assert _env(inject(pod, SERVER, Settings(), KEY))["REMIT_SHUTDOWN_GRACE_SECONDS"] == "0"
