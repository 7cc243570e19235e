"""The MCP Inspector CLI (2.x, ``--cli`` with ``--header``) through the gateway, both eras.

A real client other than the suite: it lists, calls, reads and gets prompts through a gateway
allowing everything, with its bearer token sent through ``--header``, negotiating the session
era (``legacy``: 2025-11-25) and the stateless one (``modern``: 2026-07-28). Each CLI run is
one method; the runs of an era go at once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance.conftest import Targets
from tests.conformance.suite import NodeTools

RUNS = (
    ("--method", "tools/list"),
    ("--method", "tools/call", "--tool-name", "test_simple_text"),
    ("--method", "resources/list"),
    ("--method", "resources/read", "--uri", "test://static-text"),
    ("--method", "prompts/list"),
    ("--method", "prompts/get", "--prompt-name", "test_prompt_with_arguments",
     "--prompt-args", "arg1=hello", "arg2=world"),
)  # fmt: skip


@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_inspector_lists_calls_reads_and_gets_prompts_through_the_gateway(
    node_tools: NodeTools, targets: Targets, era: str, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {targets.token}"}
    tools, called, resources, read, prompts, prompt = node_tools.inspector(
        targets.gateway, era, RUNS, headers, tmp_path
    )
    assert "test_simple_text" in {t["name"] for t in tools["tools"]}
    assert called["content"][0]["text"] == "This is a simple text response for testing."
    assert "test://static-text" in {r["uri"] for r in resources["resources"]}
    assert read["contents"][0]["text"] == "This is the content of the static text resource."
    assert "test_prompt_with_arguments" in {p["name"] for p in prompts["prompts"]}
    text = prompt["messages"][0]["content"]["text"]
    assert text == "Prompt with arguments: arg1='hello', arg2='world'"


def test_inspector_without_a_token_is_refused_by_the_gateway(
    node_tools: NodeTools, targets: Targets, tmp_path: Path
) -> None:
    with pytest.raises(AssertionError, match="failed"):
        node_tools.inspector(targets.gateway, "legacy", [RUNS[0]], {}, tmp_path)
