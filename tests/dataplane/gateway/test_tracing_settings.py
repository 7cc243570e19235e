"""Tracing is opt-in: without an endpoint no OpenTelemetry module is even imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

from remit.errors import SettingsError
from remit.gateway.settings import from_environment
from remit.gateway.tracing import start_tracing

_NO_OTEL = """
import asyncio, sys
from remit.gateway.app import Gateway
from remit.gateway.settings import from_environment
gateway = Gateway(from_environment({"REMIT_SERVER": "agents/files"}))
asyncio.run(gateway.start())
asyncio.run(gateway.stop())
loaded = sorted(name for name in sys.modules if name.startswith("opentelemetry"))
print(loaded)
"""


def test_a_gateway_without_an_endpoint_never_imports_opentelemetry() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _NO_OTEL], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines()[-1] == "[]"  # the line before is the chain marker


def test_no_endpoint_means_no_tracing() -> None:
    settings = from_environment({})
    assert start_tracing(settings.tracing, server="a/b", pod="p") is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REMIT_OTLP_ENDPOINT", "collector:4318"),
        ("REMIT_OTLP_ENDPOINT", "ftp://collector"),
        ("REMIT_TRACE_SAMPLE_RATIO", "1.5"),
        ("REMIT_TRACE_SAMPLE_RATIO", "nan"),
    ],
)
def test_bad_tracing_settings_are_named(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        from_environment({variable: value})
