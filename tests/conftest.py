"""Options shared by the whole test suite.

``--e2e`` opts in to the tests in tests/e2e, which need a reachable Kubernetes cluster (the
current kubeconfig context) with Remit installed; without it they are skipped.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--e2e",
        action="store_true",
        default=False,
        help="run end-to-end tests against the current kubeconfig cluster (tests/e2e)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: needs a real cluster; runs only with --e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--e2e"):
        return
    skip = pytest.mark.skip(reason="end-to-end: pass --e2e with a reachable cluster")
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)
