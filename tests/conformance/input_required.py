"""The conformance suite's 2026-07-28 multi-round-trip fixtures (``InputRequiredResult``).

A tool (or prompt) that needs the client's input returns the input requests instead of a
result; the client answers them and retries with ``inputResponses`` and the echoed, SDK-sealed
``requestState``. Each fixture is named and shaped as its scenario's description says.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import (
    CallToolResult,
    CreateMessageRequest,
    CreateMessageRequestParams,
    ElicitRequest,
    ElicitRequestFormParams,
    InputRequiredResult,
    ListRootsRequest,
    SamplingMessage,
    TextContent,
)


def text(value: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=value)])


def elicit(message: str, field: str, kind: str = "string") -> ElicitRequest:
    schema = {"type": "object", "properties": {field: {"type": kind}}, "required": [field]}
    return ElicitRequest(params=ElicitRequestFormParams(message=message, requested_schema=schema))


def sample(text: str, max_tokens: int) -> CreateMessageRequest:
    message = SamplingMessage(role="user", content=TextContent(type="text", text=text))
    return CreateMessageRequest(
        params=CreateMessageRequestParams(messages=[message], max_tokens=max_tokens)
    )


def answer(ctx: Context, key: str) -> dict[str, Any] | None:
    """The client's answer to input request ``key`` as plain JSON, if it sent one."""
    responses = ctx.input_responses or {}
    sent = responses.get(key)
    if sent is None:
        return None
    dumped = sent.model_dump(by_alias=True, exclude_none=True)
    return dumped if isinstance(dumped, dict) else None


def input_required_tools(mcp: MCPServer) -> None:
    """The 2026-07-28 multi-round-trip fixtures (InputRequiredResult)."""

    @mcp.tool(description="Asks for a name, then greets")
    def test_input_required_result_elicitation(
        ctx: Context,
    ) -> CallToolResult | InputRequiredResult:
        got = answer(ctx, "user_name")
        name = (got or {}).get("content", {}).get("name") if got else None
        if not isinstance(name, str):
            return InputRequiredResult(
                input_requests={"user_name": elicit("What is your name?", "name")}
            )
        return text(f"Hello, {name}!")

    @mcp.tool(description="Asks the client's model, then answers")
    def test_input_required_result_sampling(ctx: Context) -> CallToolResult | InputRequiredResult:
        got = answer(ctx, "capital_question")
        if got is None:
            question = sample("What is the capital of France?", 100)
            return InputRequiredResult(input_requests={"capital_question": question})
        said = got.get("content", {}).get("text", "")
        return text(f"The model answered: {said}")

    @mcp.tool(description="Asks for the client's roots")
    def test_input_required_result_list_roots(ctx: Context) -> CallToolResult | InputRequiredResult:
        got = answer(ctx, "client_roots")
        if got is None:
            return InputRequiredResult(input_requests={"client_roots": ListRootsRequest()})
        roots = [r.get("uri", "") for r in got.get("roots", [])]
        return text(f"Roots: {', '.join(roots)}")

    @mcp.tool(description="Asks for confirmation and keeps state")
    def test_input_required_result_request_state(
        ctx: Context,
    ) -> CallToolResult | InputRequiredResult:
        if answer(ctx, "confirm") is None or ctx.request_state != "confirm-pending":
            return InputRequiredResult(
                input_requests={"confirm": elicit("Please confirm", "ok", "boolean")},
                request_state="confirm-pending",
            )
        return text("state-ok: confirmed")

    @mcp.tool(description="Asks three things at once")
    def test_input_required_result_multiple_inputs(
        ctx: Context,
    ) -> CallToolResult | InputRequiredResult:
        keys = ("user_name", "greeting", "client_roots")
        if any(answer(ctx, k) is None for k in keys) or ctx.request_state != "multi":
            requests = {
                "user_name": elicit("What is your name?", "name"),
                "greeting": sample("Generate a greeting", 50),
                "client_roots": ListRootsRequest(),
            }
            return InputRequiredResult(input_requests=requests, request_state="multi")
        return text("All inputs received")

    @mcp.tool(description="Asks in two rounds")
    def test_input_required_result_multi_round(
        ctx: Context,
    ) -> CallToolResult | InputRequiredResult:
        if ctx.request_state == "round-2" and answer(ctx, "step2") is not None:
            return text("Both rounds complete")
        if ctx.request_state == "round-1" and answer(ctx, "step1") is not None:
            step2 = elicit("Step 2: What is your favorite color?", "color")
            return InputRequiredResult(input_requests={"step2": step2}, request_state="round-2")
        step1 = elicit("Step 1: What is your name?", "name")
        return InputRequiredResult(input_requests={"step1": step1}, request_state="round-1")

    @mcp.tool(description="Asks only for what the client declared it can answer")
    def test_input_required_result_capabilities(
        ctx: Context,
    ) -> CallToolResult | InputRequiredResult:
        if ctx.input_responses:
            return text("Inputs received")
        capabilities = ctx.client_capabilities
        requests: dict[str, Any] = {}
        if capabilities is not None and capabilities.sampling is not None:
            requests["question"] = sample("What is the capital of France?", 100)
        if capabilities is not None and capabilities.elicitation is not None:
            requests["name"] = elicit("What is your name?", "name")
        if not requests:
            return text("The client can answer nothing")
        return InputRequiredResult(input_requests=requests)

    @mcp.tool(description="State is sealed by the SDK: a tampered state is refused")
    def test_input_required_result_tampered_state(
        ctx: Context,
    ) -> CallToolResult | InputRequiredResult:
        if ctx.request_state == "sealed" and answer(ctx, "confirm") is not None:
            return text("state intact")
        confirm = elicit("Please confirm", "ok", "boolean")
        return InputRequiredResult(input_requests={"confirm": confirm}, request_state="sealed")
