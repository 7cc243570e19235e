"""The custom resources as code: MCPServer, AgentPolicy and ConsentGrant (remit.dev/v1alpha1)."""
