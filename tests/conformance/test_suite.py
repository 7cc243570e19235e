"""The official MCP conformance suite, directly and through a gateway allowing everything.

A governed server must stay a conformant server: every check that passes against the server
directly must pass through the gateway, in both protocol eras (2025-11-25 with sessions,
2026-07-28 stateless, each with ``--requirements``, which also runs its unscored scenarios).
"""

from __future__ import annotations

import pytest

from tests.conformance.conftest import EraResults
from tests.conformance.suite import ERAS


@pytest.mark.parametrize("era", ERAS)
def test_our_server_passes_every_required_scenario_directly(
    suite_results: dict[str, EraResults], era: str
) -> None:
    results = suite_results[era]
    scored = results.direct.scored(results.required)
    assert {k[0] for k in scored} == results.required, "a required scenario produced no checks"
    failed = [results.direct.describe(k) for k, v in scored.items() if v == "FAILURE"]
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize("era", ERAS)
def test_every_check_passing_directly_passes_through_the_gateway(
    suite_results: dict[str, EraResults], era: str
) -> None:
    results = suite_results[era]
    lost = [
        results.gateway.describe(key)
        for key, status in results.direct.checks.items()
        if status == "SUCCESS" and results.gateway.checks.get(key) != "SUCCESS"
    ]
    assert not lost, f"{len(lost)} checks pass directly but not through the gateway:\n" + "\n".join(
        lost
    )
