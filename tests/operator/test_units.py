"""Pure parts of the operator: settings from the environment, selectors, the webhook
configuration, the index's idea of which servers a change affects, status conditions."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from remit.api.mcpserver import LabelSelector
from remit.errors import ResourceError
from remit_operator.entry import handle_loop_error, log_unraisable
from remit_operator.errors import SettingsError
from remit_operator.gatewayspec import native_sidecars
from remit_operator.index import Index, Sidecar, sidecar_from_pod
from remit_operator.selectors import selector_matches
from remit_operator.settings import Settings, WebhookSettings
from remit_operator.status import condition, rejection
from remit_operator.webhookconfig import webhook_configuration
from tests.support.policies import grant, policy, resources, rule, server


def test_settings_from_environment() -> None:
    env = {"REMIT_PUSH_RETRIES": "5", "REMIT_PUSH_TIMEOUT_SECONDS": "0.5", "REMIT_PEERING": "remit"}
    settings = Settings.from_env(env)
    assert (settings.push.retries, settings.push.timeout_seconds) == (5, 0.5)
    assert settings.kube.peering == "remit"
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"REMIT_PUSH_RETRIES": "many"}, "REMIT_PUSH_RETRIES"),
        ({"REMIT_LOG_LEVEL": "LOUD"}, "REMIT_LOG_LEVEL"),
        ({"REMIT_WEBHOOK_CERT_FILE": "/tls.crt"}, "REMIT_WEBHOOK_KEY_FILE"),
        ({"REMIT_PUSH_CONCURRENCY": "0"}, "REMIT_PUSH_CONCURRENCY"),
        ({"REMIT_PUSH_CONCURRENCY": "512"}, "REMIT_PUSH_CONCURRENCY_TOTAL"),
        ({"REMIT_PUSH_DEADLINE_SECONDS": "0"}, "REMIT_PUSH_DEADLINE_SECONDS"),
        ({"REMIT_PEERING_LIFETIME": "5"}, "REMIT_PEERING_LIFETIME"),
        ({"REMIT_GATEWAY_NATIVE_SIDECAR": "maybe"}, "REMIT_GATEWAY_NATIVE_SIDECAR"),
        ({"REMIT_METRICS_SCRAPER": "monitoring"}, "REMIT_METRICS_SCRAPER"),
        ({"REMIT_METRICS_SCRAPER": '{"ipBlock": {"cidr": "0.0.0.0/0"}}'}, "REMIT_METRICS_SCRAPER"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("setting", "version", "native"),
    [
        ("auto", {"major": "1", "minor": "29"}, True),
        ("auto", {"major": "1", "minor": "31+"}, True),  # as managed clusters report it
        ("auto", {"major": "1", "minor": "28"}, False),
        ("auto", {"major": "2", "minor": "0"}, True),
        ("auto", {}, False),  # unknown: the plain container works everywhere
        ("auto", {"major": "one", "minor": "x"}, False),
        ("true", None, True),
        ("false", {"major": "1", "minor": "33"}, False),
    ],
)
def test_native_sidecar_on_kubernetes_1_29_or_when_asked(
    setting: str, version: dict[str, str] | None, native: bool
) -> None:
    assert native_sidecars(setting, version) is native


def test_pull_secrets_setting_is_a_comma_separated_list() -> None:
    settings = Settings.from_env({"REMIT_GATEWAY_IMAGE_PULL_SECRETS": " regcred, ,mirror,regcred"})
    assert settings.gateway.pull_secrets == ("regcred", "mirror")
    assert Settings().gateway.pull_secrets == ()


def test_selector_semantics() -> None:
    selector = LabelSelector.model_validate(
        {
            "matchLabels": {"app": "files"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["a", "b"]},
                {"key": "canary", "operator": "DoesNotExist"},
            ],
        }
    )
    assert selector_matches(selector, {"app": "files", "tier": "a"})
    assert not selector_matches(selector, {"app": "files", "tier": "c"})
    assert not selector_matches(selector, {"app": "files", "tier": "a", "canary": "1"})
    empty = LabelSelector.model_construct(match_labels={}, match_expressions=[])  # unvalidated
    assert not selector_matches(empty, {"app": "files"})  # empty never means all


def test_webhook_configuration_fails_closed_and_spares_system_namespaces() -> None:
    settings = Settings(webhook=WebhookSettings(service="remit-system/remit-webhook"))
    config = webhook_configuration(settings, b"CA")
    pods, namespaces = config["webhooks"]
    assert pods["objectSelector"] == {"matchLabels": {"remit.dev/inject": "true"}}
    assert {"key": "remit.dev/injection", "operator": "In", "values": ["enabled"]} in (
        namespaces["namespaceSelector"]["matchExpressions"]
    )
    for hook in (pods, namespaces):
        assert hook["failurePolicy"] == "Fail"
        assert hook["clientConfig"]["service"]["path"] == "/inject"
        excluded = hook["namespaceSelector"]["matchExpressions"][-1]
        assert excluded["operator"] == "NotIn"
        assert {"kube-system", "kube-public", "kube-node-lease", "remit-system"} <= set(
            excluded["values"]
        )


def test_index_wakes_only_the_affected_servers() -> None:
    index = Index()
    for resource in resources(server("files"), server("tickets")):
        index.upsert(resource)
    (files_policy,) = resources(policy("p", rule("r", tools=["*"]), servers=["files"]))
    assert index.upsert(files_policy) == {"agents/files"}
    (moved,) = resources(policy("p", rule("r", tools=["*"]), servers=["tickets"]))
    assert index.upsert(moved) == {"agents/files", "agents/tickets"}
    assert index.upsert(moved) == set()  # same spec: nothing to recompile
    (consent,) = resources(grant("g", server="tickets"))
    assert index.upsert(consent) == {"agents/tickets"}
    assert index.remove("ConsentGrant", "agents/g") == {"agents/tickets"}


def test_index_reads_only_what_takes_part_in_one_servers_bundle() -> None:
    index = Index()
    docs = [
        server("files"),
        server("tickets"),
        server("files", namespace="other"),
        policy("p", rule("r", tools=["*"]), servers=["*"]),
        policy("q", rule("r", tools=["*"]), servers=["*"], namespace="other"),
        grant("g1", server="files"),
        grant("g2", server="tickets"),
        grant("g3", server="files", namespace="other"),
    ]
    for resource in resources(*docs):
        index.upsert(resource)

    def names(server_ref: str) -> set[str]:
        return {r.metadata.name for r in index.resources_for(server_ref)}

    assert names("agents/files") == {"files", "p", "g1"}
    assert names("other/files") == {"files", "q", "g3"}
    (moved,) = resources(grant("g1", server="tickets"))
    assert index.upsert(moved) == {"agents/files", "agents/tickets"}
    assert names("agents/files") == {"files", "p"}
    assert {g.metadata.name for g in index.grants_for("agents/tickets")} == {"g1", "g2"}
    index.remove("ConsentGrant", "agents/g1")
    index.remove("AgentPolicy", "agents/p")
    assert names("agents/tickets") == {"tickets", "g2"}
    assert index.grants_for("agents/files") == []


def test_index_keeps_sidecars_by_the_server_they_claim() -> None:
    index = Index()
    first = Sidecar("agents/a", "agents/files", "10.0.0.1", True, True, None, "1")
    index.upsert_pod(first)
    index.upsert_pod(Sidecar("agents/b", "agents/files", "10.0.0.2", True, True, None, "1"))
    moved = Sidecar("agents/a", "agents/tickets", "10.0.0.1", True, True, None, "1")
    assert index.upsert_pod(moved) == {"agents/files", "agents/tickets"}
    assert [s.pod for s in index.sidecars("agents/files")] == ["agents/b"]
    assert index.sidecars("agents/tickets") == [moved]
    assert index.remove_pod("agents/a") == {"agents/tickets"}
    assert index.sidecars("agents/tickets") == []


def test_sidecar_from_pod_tracks_restarts() -> None:
    pod = {
        "metadata": {
            "name": "p",
            "namespace": "agents",
            "uid": "u",
            "annotations": {"remit.dev/mcpserver": "files"},
        },
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.1",
            "containerStatuses": [
                {
                    "name": "remit-gateway",
                    "restartCount": 0,
                    "started": True,
                    "state": {"running": {}},
                }
            ],
        },
    }
    first = sidecar_from_pod(pod)
    assert first is not None
    assert first.reachable
    gateway = pod["status"]["containerStatuses"][0]  # type: ignore[index]
    gateway["started"] = False  # running, but its startup probe has not passed: not listening
    waiting = sidecar_from_pod(pod)
    assert waiting is not None
    assert (waiting.reachable, waiting.starting) == (False, True)
    gateway["started"] = True
    assert first.server == "agents/files"
    pod["status"]["containerStatuses"][0]["restartCount"] = 1  # type: ignore[index]
    second = sidecar_from_pod(pod)
    assert second is not None
    assert second.incarnation != first.incarnation
    pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"  # type: ignore[index]
    assert not sidecar_from_pod(pod).reachable  # type: ignore[union-attr]
    assert sidecar_from_pod({"metadata": {"name": "x"}}) is None


def test_condition_keeps_transition_time_while_status_holds() -> None:
    t1, t2 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    first = condition("Ready", True, "InSync", "m", generation=1, now=t1)
    again = condition("Ready", True, "InSync", "m", generation=2, now=t2, previous=[first])
    flipped = condition("Ready", False, "Syncing", "m", generation=2, now=t2, previous=[first])
    assert again["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert flipped["lastTransitionTime"] == "2026-01-02T00:00:00Z"
    reason, message = rejection(
        ResourceError("agents/p", "spec.rules[0].when", "invalid CEL at column 3: x")
    )
    assert (reason, message) == (
        "InvalidExpression",
        "spec.rules[0].when: invalid CEL at column 3: x",
    )


def test_operator_command_reports_bad_settings_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import typer  # noqa: PLC0415
    from typer.testing import CliRunner  # noqa: PLC0415

    from remit.cli.operator import operator  # noqa: PLC0415

    app = typer.Typer()
    app.command()(operator)
    monkeypatch.setenv("REMIT_PUSH_RETRIES", "lots")
    result = CliRunner().invoke(app, [])
    assert result.exit_code == 2
    assert "REMIT_PUSH_RETRIES" in result.output
    assert "Traceback" not in result.output


def test_operator_deployment_entry_starts_without_the_cli_framework_and_names_a_bad_setting() -> (
    None
):
    """``remit operator`` as the chart's Deployment runs it skips Typer and Rich (memory), and a
    bad setting is one line naming it, exit code 2, also when importing the package reads it."""
    probe = (
        "import sys; sys.argv = ['remit', 'operator'];"
        "from remit.cli.entry import main\n"
        "try:\n main()\n"
        "except SystemExit as exc:\n"
        " print(exc.code, sorted(m for m in ('typer', 'rich') if m in sys.modules))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMIT_")}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env={**env, "REMIT_PUSH_RETRIES": "lots"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout.strip() == "2 []"
    assert result.stderr.strip() == "error: REMIT_PUSH_RETRIES: expected a number, got 'lots'"


def test_an_exception_python_cannot_raise_is_one_log_line_not_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Leaky:
        def __del__(self) -> None:
            raise RuntimeError("generator didn't stop after athrow()")

    previous = sys.unraisablehook
    sys.unraisablehook = log_unraisable
    try:
        with caplog.at_level(logging.INFO, logger="remit_operator.entry"):
            Leaky()  # dropped at once: __del__ raises where nothing can catch it
    finally:
        sys.unraisablehook = previous
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert len(lines) == 1
    assert lines[0].startswith("ignored RuntimeError (generator didn't stop after athrow()) in ")
    assert "Traceback" not in caplog.text


def test_a_watch_stream_failing_to_close_at_shutdown_is_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def watch() -> AsyncIterator[int]:
        try:
            yield 1
        finally:
            raise RuntimeError("generator didn't stop after athrow()")

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(handle_loop_error)
        stream = watch()
        await stream.__anext__()
        main.stream = stream  # type: ignore[attr-defined]  # left open: closed by asyncio.run

    with caplog.at_level(logging.INFO):
        asyncio.run(main())
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert len(lines) == 1
    assert lines[0].startswith("closing <async_generator object")
    assert "RuntimeError" in lines[0]
    assert "Traceback" not in caplog.text


def test_other_loop_errors_keep_asyncios_report(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            handle_loop_error(loop, {"message": "boom", "exception": ValueError("x")})
    finally:
        loop.close()
    assert "boom" in caplog.text
    assert "ValueError" in caplog.text
