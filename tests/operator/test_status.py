"""Status and Events the operator writes: policy acceptance and rejection, grant phases,
server readiness, failed pushes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import kmock

from tests.operator.support import (
    RunningOperator,
    app_pod,
    apply,
    delete,
    events,
    eventually,
    gateway_status,
    injected,
    patch,
    post_pod,
    status_of,
)
from tests.support.policies import grant, policy, rule, server


async def test_valid_policy_is_accepted_with_an_event(
    k8s: kmock.KubernetesEmulator, operator: RunningOperator
) -> None:
    await apply(k8s, policy("readers", rule("read", tools=["read_*"])))
    status = await eventually(lambda: status_of(k8s, "AgentPolicy", "readers"))
    condition = status["conditions"][0]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "Accepted",
        "True",
        "Valid",
    )
    assert condition["observedGeneration"] == 1
    event = (await eventually(lambda: events(k8s, "Accepted")))[0]
    assert event["involvedObject"]["name"] == "readers"


async def test_invalid_policy_names_the_field_and_the_cel_column(
    k8s: kmock.KubernetesEmulator, operator: RunningOperator
) -> None:
    bad = policy("broken", rule("read", tools=["read_*"], when="args.path.startsWith("))
    await apply(k8s, bad)
    status = await eventually(lambda: status_of(k8s, "AgentPolicy", "broken"))
    condition = status["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("False", "InvalidExpression")
    assert condition["message"].startswith("spec.rules[0].when: invalid CEL at column ")
    event = (await eventually(lambda: events(k8s, "Rejected")))[0]
    assert "spec.rules[0].when" in event["message"]
    assert event["type"] == "Warning"


async def test_grant_phases_follow_revocation(
    k8s: kmock.KubernetesEmulator, operator: RunningOperator
) -> None:
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    await apply(k8s, server("files"))
    await apply(k8s, grant("alice", expires_at=expires))
    await eventually(lambda: status_of(k8s, "ConsentGrant", "alice").get("phase") == "Active")
    status = status_of(k8s, "ConsentGrant", "alice")
    assert status["expiresAt"] == expires.isoformat().replace("+00:00", "Z")
    assert status["conditions"][0]["type"] == "Active"
    await patch(k8s, "ConsentGrant", "alice", {"spec": {"revoked": True}})
    await eventually(lambda: status_of(k8s, "ConsentGrant", "alice").get("phase") == "Revoked")
    assert status_of(k8s, "ConsentGrant", "alice")["conditions"][0]["status"] == "False"


async def test_unreachable_sidecar_is_reported_and_an_event_posted(
    k8s: kmock.KubernetesEmulator, operator: RunningOperator
) -> None:
    await apply(k8s, server("files", gateway={"port": 9000, "adminPort": 1}))
    pod = await injected(operator.settings, app_pod("files-0", {"app": "files-mcp"}))
    # Started (its startup probe passed) yet nothing listens on port 1: a real failure.
    await post_pod(k8s, pod, gateway_status("127.0.0.1", started=True))

    def failed() -> bool:
        conditions = status_of(k8s, "MCPServer", "files").get("conditions") or [{}]
        return conditions[0].get("reason") == "PushFailed"

    await eventually(failed, timeout=15)
    status = status_of(k8s, "MCPServer", "files")
    assert (status["sidecarsDesired"], status["sidecarsInSync"]) == (1, 0)
    assert status["conditions"][0]["status"] == "False"
    event = (await eventually(lambda: events(k8s, "PushFailed")))[0]
    assert "agents/files-0" in event["message"]


def _warnings(status: dict[str, object]) -> dict[str, str]:
    found = [c for c in status.get("conditions") or [] if c["type"] == "Warnings"]  # type: ignore[attr-defined]
    return found[0] if found else {}


async def test_policy_naming_a_missing_server_and_a_broken_glob_gets_a_warning(
    k8s: kmock.KubernetesEmulator, operator: RunningOperator
) -> None:
    await apply(k8s, server("files"))
    await eventually(lambda: status_of(k8s, "MCPServer", "files"))
    bad = policy("typo", rule("read", tools=["search_[a-"], when='"EU"'), servers=["file"])
    await apply(k8s, bad)
    status = await eventually(lambda: _warnings(status_of(k8s, "AgentPolicy", "typo")))
    assert (status["status"], status["reason"]) == ("True", "Several")
    assert "spec.servers: names no MCPServer in namespace" in status["message"]
    assert "spec.rules[0].tools[0]: malformed glob 'search_[a-'" in status["message"]
    assert "spec.rules[0].when: '\"EU\"' is not a boolean condition" in status["message"]
    assert status_of(k8s, "AgentPolicy", "typo")["conditions"][0]["type"] == "Accepted"
    # (Its Warning event is posted beside the Accepted one; kmock names both alike and keeps
    # one, so the event is checked for the grant below, which posts no other.)

    await apply(k8s, policy("fine", rule("read", tools=["read_*"])))
    clean = await eventually(lambda: _warnings(status_of(k8s, "AgentPolicy", "fine")))
    assert (clean["status"], clean["reason"]) == ("False", "None")


async def test_grant_expired_when_created_gets_a_warning(
    k8s: kmock.KubernetesEmulator, operator: RunningOperator
) -> None:
    await apply(k8s, server("files"))
    expired = grant("late", expires_at=datetime(2020, 1, 1, tzinfo=UTC))
    expired["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    await apply(k8s, expired)
    status = await eventually(lambda: _warnings(status_of(k8s, "ConsentGrant", "late")))
    assert (status["status"], status["reason"]) == ("True", "ExpiredWhenApplied")
    assert "already expired" in status["message"]
    assert "its creation (2026-01-01T00:00:00Z)" in status["message"]
    event = (await eventually(lambda: events(k8s, "ExpiredWhenApplied")))[0]
    assert (event["type"], event["involvedObject"]["name"]) == ("Warning", "late")


async def test_no_server_warning_clears_when_the_server_is_created_and_returns_when_deleted(
    k8s: kmock.KubernetesEmulator, operator: RunningOperator
) -> None:
    await apply(k8s, policy("early", rule("read", tools=["read_*"]), servers=["later"]))
    await apply(k8s, grant("early-grant", server="later"))
    for kind, name in (("AgentPolicy", "early"), ("ConsentGrant", "early-grant")):
        warned = await eventually(lambda k=kind, n=name: _warnings(status_of(k8s, k, n)))
        assert (warned["status"], warned["reason"]) == ("True", "NoServer")

    await apply(k8s, server("later"))
    for kind, name in (("AgentPolicy", "early"), ("ConsentGrant", "early-grant")):
        await eventually(
            lambda k=kind, n=name: _warnings(status_of(k8s, k, n)).get("status") == "False"
        )

    await delete(k8s, "MCPServer", "later")
    await eventually(
        lambda: _warnings(status_of(k8s, "ConsentGrant", "early-grant")).get("reason") == "NoServer"
    )
