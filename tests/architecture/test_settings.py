"""One settings loader for the operator and the gateway; the documented tables come from it."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest
from scripts.settings_docs import TABLES, documented, generated

import remit
import remit_operator
from remit.api.mcpserver import MCPServer
from remit.consent.settings import ConsentSettings
from remit.errors import SettingsError
from remit.gateway.settings import GatewaySettings, from_environment
from remit.gateway.values import Address
from remit.settings import load, sections, variables
from remit_operator import errors as operator_errors
from remit_operator.gatewayspec import gateway_container
from remit_operator.settings import Settings
from tests.support.policies import resources, server


@pytest.mark.parametrize("name", sorted(TABLES))
def test_the_documented_table_is_the_one_the_fields_describe(name: str) -> None:
    assert documented(name) == generated(name)


def _undocumented(cls: type) -> list[str]:
    """Fields of ``cls`` and its groups that no variable sets."""
    hints = typing.get_type_hints(cls)
    found: list[str] = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("group"):
            found += _undocumented(f.metadata.get("source") or hints[f.name])
        elif "env" not in f.metadata:
            found.append(f"{cls.__name__}.{f.name}")
    return found


IN_PROCESS = (".policy_dirs", "ConsentLinkSettings.key", "ConsentSettings.key")  # set by the CLI


@pytest.mark.parametrize("cls", [Settings, GatewaySettings, ConsentSettings])
def test_every_setting_field_has_a_documented_variable(cls: type) -> None:
    names = [v.name for v in variables(cls)]
    assert all(name.startswith("REMIT_") for name in names)
    assert len(names) == len(set(names))
    assert [f for f in _undocumented(cls) if not f.endswith(IN_PROCESS)] == []


@pytest.mark.parametrize("cls", [Settings, GatewaySettings])
def test_every_variable_is_in_exactly_one_documented_group(cls: type) -> None:
    grouped = [v.name for section in sections(cls) for v in section.variables]
    assert sorted(grouped) == sorted(v.name for v in variables(cls))
    assert all(section.title for section in sections(cls))  # no ungrouped variable


def test_every_variable_the_webhook_injects_is_one_the_gateway_reads() -> None:
    (files,) = resources(server("files"))
    assert isinstance(files, MCPServer)
    injected = {e["name"] for e in gateway_container(files, Settings())["env"]}
    assert "REMIT_SERVER" in injected
    assert injected <= {v.name for v in variables(GatewaySettings)}


# os.environ["REMIT_X"], os.environ.get("REMIT_X"), os.getenv("REMIT_X"), f-strings too
_AD_HOC_READ = re.compile(r"""(environ(\.get)?|getenv)\s*[\[(]\s*f?["']REMIT_""")


def test_no_module_reads_a_remit_variable_outside_the_settings_loaders() -> None:
    roots = [Path(remit.__file__).parent, Path(remit_operator.__file__).parent]
    found = [
        f"{path}:{number}"
        for root in roots
        for path in sorted(root.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _AD_HOC_READ.search(line)
    ]
    assert found == []


def test_the_metrics_port_is_documented() -> None:
    assert "`REMIT_METRICS_PORT` | `9090`" in Path(TABLES["operator"][0]).read_text()


def test_operator_and_gateway_load_through_the_same_rules() -> None:
    env = {
        "REMIT_PUSH_RETRIES": "5",
        "REMIT_RESYNC_SECONDS": "2.5",
        "REMIT_PEERING": " ",  # blank is unset
        "REMIT_MAX_BODY_BYTES": "1024",
        "REMIT_LISTEN": "127.0.0.1:9100",
        "REMIT_AUDIT_FSYNC": "off",
        "REMIT_POD_NAME": "pod-a",
        "REMIT_LOG_LEVEL": "info",
    }
    operator = Settings.from_env(env)
    assert (operator.push.retries, operator.sync.resync_seconds) == (5, 2.5)
    assert operator.kube.peering is None
    gateway = from_environment(env)
    assert gateway.limits.max_body_bytes == 1024
    assert gateway.listen.mcp == Address("127.0.0.1", 9100)
    assert gateway.audit.fsync is False  # the REMIT_AUDIT_* group
    assert gateway.instance.pod == "pod-a"
    assert (operator.kube.log_level, gateway.logs.level) == ("info", "INFO")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"REMIT_AUDIT_FSYNC": "maybe"}, "REMIT_AUDIT_FSYNC"),
        ({"REMIT_ASGI_SERVER": "gunicorn"}, "REMIT_ASGI_SERVER"),
        ({"REMIT_MAX_BODY_BYTES": "-1"}, "REMIT_MAX_BODY_BYTES"),
        ({"REMIT_LISTEN": "nowhere"}, "REMIT_LISTEN"),
        ({"REMIT_LOG_LEVEL": "LOUD"}, "REMIT_LOG_LEVEL"),
        ({"REMIT_AUDIT_SINK": "file"}, "REMIT_AUDIT_"),  # a file sink needs REMIT_AUDIT_FILE
    ],
)
def test_a_bad_gateway_variable_is_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        from_environment(env)


def test_a_bad_operator_variable_is_named_with_the_operators_error() -> None:
    with pytest.raises(operator_errors.SettingsError, match="REMIT_PUSH_RETRIES"):
        Settings.from_env({"REMIT_PUSH_RETRIES": "three"})


def test_unset_variables_keep_the_defaults() -> None:
    assert load(Settings, {}) == Settings()
    gateway = from_environment({})
    assert gateway.instance.pod  # the host name when REMIT_POD_NAME is unset
    unnamed = dataclasses.replace(gateway.instance, pod="")
    assert dataclasses.replace(gateway, instance=unnamed) == GatewaySettings()
