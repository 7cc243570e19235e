"""The MCP server the official conformance suite is run against, built with the `mcp` SDK.

`@modelcontextprotocol/conformance` tests a server through fixtures it names: tools, resources
and prompts with fixed names and answers (each scenario's description says what it expects).
This module implements them from those descriptions so the suite can be run against a real SDK
server directly and through a Remit gateway, in both protocol eras the SDK serves (2025-11-25
with sessions, 2026-07-28 stateless): whatever passes directly must pass through the gateway.

Run: ``python -m tests.conformance.server --port N`` (binds 127.0.0.1, serves ``/mcp``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import struct
import wave
import zlib
from typing import Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import AssistantMessage, Message, Prompt, UserMessage
from mcp.shared.exceptions import MCPError
from mcp.types import (
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    AudioContent,
    CallToolResult,
    ClientCapabilities,
    Completion,
    EmbeddedResource,
    EmptyResult,
    ImageContent,
    InputRequiredResult,
    MissingRequiredClientCapabilityErrorData,
    PromptReference,
    ResourceTemplateReference,
    SamplingCapability,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)

from tests.conformance.input_required import answer, elicit, input_required_tools, text

WATCHED = "test://watched-resource"


def _png() -> str:
    """A 1x1 red PNG, built here rather than pasted."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b"")).decode()


def _wav() -> str:
    """Eight samples of silence as a WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(8000)
        out.writeframes(b"\x80" * 8)
    return base64.b64encode(buffer.getvalue()).decode()


PNG = _png()
WAV = _wav()
SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


def build() -> MCPServer:
    """The conformance fixtures on one MCPServer."""
    mcp = MCPServer("remit-conformance", version="1.0.0")
    subscribed: set[str] = set()

    @mcp.tool(description="Returns a simple text response")
    def test_simple_text() -> CallToolResult:
        return text("This is a simple text response for testing.")

    @mcp.tool(description="Returns an image")
    def test_image_content() -> CallToolResult:
        return CallToolResult(content=[ImageContent(type="image", data=PNG, mimeType="image/png")])

    @mcp.tool(description="Returns audio")
    def test_audio_content() -> CallToolResult:
        return CallToolResult(content=[AudioContent(type="audio", data=WAV, mimeType="audio/wav")])

    @mcp.tool(description="Returns an embedded resource")
    def test_embedded_resource() -> CallToolResult:
        resource = TextResourceContents(
            uri="test://embedded-resource",
            mimeType="text/plain",
            text="This is an embedded resource content.",
        )
        return CallToolResult(content=[EmbeddedResource(type="resource", resource=resource)])

    @mcp.tool(description="Returns text, an image and a resource")
    def test_multiple_content_types() -> CallToolResult:
        resource = TextResourceContents(
            uri="test://mixed-content-resource",
            mimeType="application/json",
            text=json.dumps({"test": "data", "value": 123}, separators=(",", ":")),
        )
        return CallToolResult(
            content=[
                TextContent(type="text", text="Multiple content types test:"),
                ImageContent(type="image", data=PNG, mimeType="image/png"),
                EmbeddedResource(type="resource", resource=resource),
            ]
        )

    @mcp.tool(description="Logs three messages while it runs")
    async def test_tool_with_logging(ctx: Context) -> str:
        await ctx.info("Tool execution started")
        await asyncio.sleep(0.05)
        await ctx.info("Tool processing data")
        await asyncio.sleep(0.05)
        await ctx.info("Tool execution completed")
        return "Tool with logging executed successfully"

    @mcp.tool(description="Always fails")
    def test_error_handling() -> CallToolResult:
        return CallToolResult(
            content=[
                TextContent(
                    type="text", text="This tool intentionally returns an error for testing"
                )
            ],
            is_error=True,
        )

    @mcp.tool(description="Reports progress 0, 50 and 100 of 100")
    async def test_tool_with_progress(ctx: Context) -> str:
        for step in (0, 50, 100):
            await ctx.report_progress(step, 100)
            if step < 100:
                await asyncio.sleep(0.05)
        return "Tool with progress executed successfully"

    @mcp.tool(description="Asks the client's model through sampling")
    async def test_sampling(prompt: str, ctx: Context) -> str:
        message = SamplingMessage(role="user", content=TextContent(type="text", text=prompt))
        result = await ctx.session.create_message(messages=[message], max_tokens=100)
        content = result.content
        text = content.text if isinstance(content, TextContent) else str(content)
        return f"LLM response: {text}"

    @mcp.tool(description="Asks the user through elicitation")
    async def test_elicitation(message: str, ctx: Context) -> str:
        schema = {
            "type": "object",
            "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"},
            },
            "required": ["username", "email"],
        }
        result = await ctx.session.elicit_form(message=message, requested_schema=schema)
        return f"User response: action={result.action}, content={result.content}"

    @mcp.tool(description="Elicitation with defaults for every primitive type")
    async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
        schema = {
            "type": "object",
            "properties": {
                "name": {"type": "string", "default": "John Doe"},
                "age": {"type": "integer", "default": 30},
                "score": {"type": "number", "default": 95.5},
                "status": {
                    "type": "string",
                    "enum": ["active", "inactive", "pending"],
                    "default": "active",
                },
                "verified": {"type": "boolean", "default": True},
            },
        }
        result = await ctx.session.elicit_form(message="Defaults", requested_schema=schema)
        return f"Elicitation completed: action={result.action}, content={result.content}"

    @mcp.tool(description="Elicitation with the five enum shapes")
    async def test_elicitation_sep1330_enums(ctx: Context) -> str:
        options = ["option1", "option2", "option3"]
        titled = [{"const": f"value{i}", "title": t} for i, t in ((1, "First"), (2, "Second"))]
        schema = {
            "type": "object",
            "properties": {
                "untitledSingle": {"type": "string", "enum": options},
                "titledSingle": {"type": "string", "oneOf": titled},
                "legacyEnum": {
                    "type": "string",
                    "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"],
                },
                "untitledMulti": {"type": "array", "items": {"type": "string", "enum": options}},
                "titledMulti": {"type": "array", "items": {"anyOf": titled}},
            },
        }
        result = await ctx.session.elicit_form(message="Enums", requested_schema=schema)
        return f"Elicitation completed: action={result.action}, content={result.content}"

    @mcp.tool(name="json_schema_2020_12_tool", description="Tool with JSON Schema 2020-12 features")
    def json_schema_tool() -> str:
        return "ok"

    tool = mcp._tool_manager.get_tool("json_schema_2020_12_tool")
    assert tool is not None
    tool.parameters = SCHEMA_2020_12

    @mcp.tool(description="Needs the client's sampling capability")
    def test_missing_capability(ctx: Context) -> str:
        capabilities = ctx.client_capabilities
        if capabilities is None or capabilities.sampling is None:
            required = ClientCapabilities(sampling=SamplingCapability())
            data = MissingRequiredClientCapabilityErrorData(required_capabilities=required)
            raise MCPError(
                code=MISSING_REQUIRED_CLIENT_CAPABILITY,
                message="this tool needs the client's sampling capability",
                data=data.model_dump(by_alias=True, mode="json", exclude_none=True),
            )
        return "sampling is available"

    @mcp.tool(description="Adds a tool, so the tool list changes")
    async def test_trigger_tool_change(ctx: Context) -> str:
        added = f"added_tool_{len(mcp._tool_manager.list_tools())}"
        mcp.add_tool(lambda: "added", name=added, description="Added at run time")
        await ctx.notify_tools_changed()
        return f"added {added}"

    @mcp.tool(description="Adds a prompt, so the prompt list changes")
    async def test_trigger_prompt_change(ctx: Context) -> str:
        added = f"added_prompt_{len(mcp._prompt_manager.list_prompts())}"
        mcp.add_prompt(Prompt.from_function(lambda: "added", name=added, description="Added"))
        await ctx.notify_prompts_changed()
        return f"added {added}"

    input_required_tools(mcp)
    _resources(mcp, subscribed)
    _prompts(mcp)

    @mcp.completion()
    async def complete(
        ref: PromptReference | ResourceTemplateReference, argument: Any, context: Any
    ) -> Completion:
        words = ["paris", "park", "party"]
        return Completion(
            values=[w for w in words if w.startswith(argument.value)], total=3, has_more=False
        )

    async def subscribe(ctx: Any, params: SubscribeRequestParams) -> EmptyResult:
        subscribed.add(str(params.uri))
        return EmptyResult()

    async def unsubscribe(ctx: Any, params: UnsubscribeRequestParams) -> EmptyResult:
        subscribed.discard(str(params.uri))
        return EmptyResult()

    async def set_level(ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
        return EmptyResult()

    lowlevel = mcp._lowlevel_server
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)
    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
    return mcp


def _resources(mcp: MCPServer, subscribed: set[str]) -> None:
    @mcp.resource("test://static-text", description="Static text", mime_type="text/plain")
    def static_text() -> str:
        return "This is the content of the static text resource."

    @mcp.resource("test://static-binary", description="Static binary", mime_type="image/png")
    def static_binary() -> bytes:
        return base64.b64decode(PNG)

    @mcp.resource(WATCHED, description="A resource to subscribe to", mime_type="text/plain")
    def watched() -> str:
        return "Watched resource content."

    @mcp.resource(
        "test://template/{id}/data", description="Data by id", mime_type="application/json"
    )
    def template(id: str) -> str:
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


def _prompts(mcp: MCPServer) -> None:
    @mcp.prompt(description="A simple prompt")
    def test_simple_prompt() -> list[Message]:
        return [UserMessage("This is a simple prompt for testing.")]

    @mcp.prompt(description="A prompt with two arguments")
    def test_prompt_with_arguments(arg1: str, arg2: str) -> list[Message]:
        return [UserMessage(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")]

    @mcp.prompt(description="A prompt embedding a resource")
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[Message]:  # noqa: N803
        resource = TextResourceContents(
            uri=resourceUri, mimeType="text/plain", text="Embedded resource content for testing."
        )
        return [
            UserMessage(EmbeddedResource(type="resource", resource=resource)),
            UserMessage("Please process the embedded resource above."),
        ]

    @mcp.prompt(description="A prompt with an image")
    def test_prompt_with_image() -> list[Message]:
        return [
            UserMessage(ImageContent(type="image", data=PNG, mimeType="image/png")),
            UserMessage("Please analyze the image above."),
        ]

    @mcp.prompt(description="A prompt that first asks for context")
    def test_input_required_result_prompt(ctx: Context) -> list[Message] | InputRequiredResult:
        got = answer(ctx, "user_context")
        if got is None:
            ask = elicit("What context should the prompt use?", "context")
            return InputRequiredResult(input_requests={"user_context": ask})
        context = got.get("content", {}).get("context", "")
        return [UserMessage(f"Prompt using context: {context}"), AssistantMessage("Understood.")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = build().streamable_http_app()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
