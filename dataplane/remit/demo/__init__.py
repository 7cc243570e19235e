"""Runnable demo pieces: an MCP files server and a local token issuer."""
