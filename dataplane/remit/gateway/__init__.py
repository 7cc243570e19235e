"""The gateway sidecar: authenticate, decide, forward and record each MCP request."""
