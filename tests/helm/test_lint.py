"""`helm lint --strict` passes for every value set, and the strict schema rejects typos."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from tests.helm.chart import lint, render, validate_values
from tests.helm.values import ALL

ERROR = 3


@pytest.mark.parametrize("name", sorted(ALL))
def test_lint_passes(name: str) -> None:
    report = lint(ALL[name])
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems, problems
    assert report["errors"] == []


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"operator": {"replicaCont": 2}}, "replicaCont"),
        ({"webhok": {}}, "webhok"),
        ({"webhook": {"tls": {"certManager": {"enable": True}}}}, "enable"),
        ({"webhook": {"failurePolicy": "Maybe"}}, "failurePolicy"),
        ({"operator": {"replicaCount": 0}}, "replicaCount"),
        ({"operator": {"logLevel": "loud"}}, "logLevel"),
        ({"gateway": {"resources": {"memoryLimit": "lots"}}}, "memoryLimit"),
        ({"image": {"digest": "latest"}}, "digest"),
        ({"webhook": {"timeoutSeconds": 31}}, "timeoutSeconds"),
        ({"signingKey": {"existingSecret": "Bad_Name"}}, "existingSecret"),
        ({"peering": {"lifetime": 5}}, "lifetime"),
    ],
)
def test_schema_rejects_bad_values(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=complaint):
        validate_values(values)
    report = lint(values)
    assert any(complaint in e for e in report["errors"]), report


def test_install_fails_on_a_typo_before_rendering_anything() -> None:
    with pytest.raises(helm.HelmValuesError, match="additional properties 'replicas' not allowed"):
        render({"operator": {"replicas": 2}})


def test_servicemonitor_without_its_service_fails_with_a_reason() -> None:
    with pytest.raises(helm.HelmError, match=r"needs metrics\.service=true"):
        render({"metrics": {"service": False, "serviceMonitor": {"enabled": True}}})
