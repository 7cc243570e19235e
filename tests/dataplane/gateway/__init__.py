"""Tests of the gateway's MCP transport layer (proxy, protocol checks, SSE relay)."""
