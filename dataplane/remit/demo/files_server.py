"""A real MCP server (from the ``mcp`` SDK) with files-style tools, for the demo and the tests.

The gateway needs something genuine to protect: tools with the annotations policies match on
(read-only, idempotent, destructive), a resource, a prompt, a tool that streams progress
notifications and one that asks the client a question (elicitation, a server-to-client request
on the SSE stream). Files live in memory so the demo never touches the disk. Runs on a given
host and port; one process serves both the session-based (2025-06-18/2025-11-25) and the
session-less (2026-07-28) protocol; ``--json-response`` and ``--stateless`` pick the SDK's modes.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp_types import JSONRPCMessage, ToolAnnotations
from pydantic import BaseModel

SEED_FILES: Mapping[str, str] = {
    "/data/readme.txt": "Welcome to the Remit demo files server.\n",
    "/data/alice/notes.txt": "alice's notes\n",
    "/data/bob/todo.txt": "buy milk\n",
}


@dataclass(frozen=True)
class FilesServerSettings:
    """How to run the server: address, MCP path and the SDK's transport modes."""

    host: str = "127.0.0.1"
    port: int = 8080
    path: str = "/mcp"
    json_response: bool = False
    stateless: bool = False


class MemoryEventStore(EventStore):
    """Keeps every SSE event so a client can resume a stream with ``Last-Event-ID``.

    The SDK shares one store across sessions and names streams by request id, so the same
    stream id recurs; each priming event (``message is None``) starts a new run of a stream
    id, and a replay covers only the run the presented event belongs to. (Two sessions
    streaming the same request id at the same moment would still share a run: demo only.)
    """

    def __init__(self) -> None:
        self._events: list[tuple[str, EventId, JSONRPCMessage | None]] = []
        self._runs: dict[StreamId, str] = {}
        self._ids = itertools.count(1)

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        number = next(self._ids)
        if message is None or stream_id not in self._runs:
            self._runs[stream_id] = f"{stream_id}#{number}"
        event_id = f"{stream_id}:{number}"
        self._events.append((self._runs[stream_id], event_id, message))
        return event_id

    async def replay_events_after(
        self, last_event_id: EventId, send_callback: EventCallback
    ) -> StreamId | None:
        known = [i for i, (_, eid, _) in enumerate(self._events) if eid == last_event_id]
        if not known:
            return None
        run = self._events[known[0]][0]
        for other, eid, message in self._events[known[0] + 1 :]:
            if other == run and message is not None:
                await send_callback(EventMessage(message, eid))
        return run.split("#")[0]


class Confirmation(BaseModel):
    """What ``confirm_delete`` asks the user."""

    confirm: bool


def build_server(files: Mapping[str, str] = SEED_FILES) -> MCPServer:
    """An MCP server over an in-memory copy of ``files``."""
    store = dict(files)
    mcp = MCPServer(
        name="files",
        version="0.1.0",
        instructions="Read and write demo files.",
        log_level="WARNING",
    )

    @mcp.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def read_file(path: str) -> str:
        """Return the content of a file."""
        if path not in store:
            raise ValueError(f"no such file: {path}")
        return store[path]

    @mcp.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def list_files(prefix: str = "/") -> list[str]:
        """List the files whose path starts with ``prefix``."""
        return sorted(p for p in store if p.startswith(prefix))

    @mcp.tool(annotations=ToolAnnotations(destructiveHint=False, idempotentHint=True))
    def write_file(path: str, content: str) -> str:
        """Create or replace a file."""
        store[path] = content
        return f"wrote {len(content)} characters to {path}"

    @mcp.tool(annotations=ToolAnnotations(destructiveHint=True))
    def delete_file(path: str) -> str:
        """Delete a file."""
        if store.pop(path, None) is None:
            raise ValueError(f"no such file: {path}")
        return f"deleted {path}"

    @mcp.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def scan_files(steps: int, ctx: Context) -> str:
        """Walk the files, reporting progress ``steps`` times (streams notifications over SSE)."""
        for step in range(1, steps + 1):
            await ctx.report_progress(step, steps, f"scanned {step}/{steps}")
        return f"scanned {len(store)} files in {steps} steps"

    @mcp.tool(annotations=ToolAnnotations(destructiveHint=True))
    async def confirm_delete(path: str, ctx: Context) -> str:
        """Ask the user to confirm (elicitation, a server-to-client request), then delete."""
        answer = await ctx.elicit(f"Delete {path}?", Confirmation)
        if answer.action != "accept" or not answer.data.confirm:
            return f"kept {path}"
        store.pop(path, None)
        return f"deleted {path}"

    @mcp.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def request_headers(ctx: Context) -> dict[str, str]:
        """Diagnostic: the HTTP headers this request reached the server with."""
        return dict(ctx.headers or {})

    @mcp.resource("files://readme", mime_type="text/plain")
    def readme() -> str:
        """The demo's readme file."""
        return store.get("/data/readme.txt", "")

    @mcp.prompt()
    def summarize_file(path: str) -> str:
        """Ask the model to summarise a file."""
        return f"Summarise the file {path} in one paragraph."

    return mcp


def serve(settings: FilesServerSettings) -> None:
    """Run the server until interrupted."""
    app = build_server().streamable_http_app(
        streamable_http_path=settings.path,
        json_response=settings.json_response,
        stateless_http=settings.stateless,
        event_store=None if settings.stateless else MemoryEventStore(),
        host=settings.host,
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m remit.demo.files_server --port 8080 [--json-response]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--path", default="/mcp")
    parser.add_argument("--json-response", action="store_true")
    parser.add_argument("--stateless", action="store_true")
    args = parser.parse_args(argv)
    serve(
        FilesServerSettings(
            host=args.host,
            port=args.port,
            path=args.path,
            json_response=args.json_response,
            stateless=args.stateless,
        )
    )


if __name__ == "__main__":
    main()
