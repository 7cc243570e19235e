"""Remit: decide, enforce and record what AI agents do with MCP tools.

The policy core (``remit.api``, ``remit.policy``) is shared by the operator, the gateway
and the CLI; it never imports kopf or kubernetes.
"""

__version__ = "0.1.0"
