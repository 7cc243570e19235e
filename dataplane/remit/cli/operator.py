"""``remit operator``: run the Kubernetes operator in this process (settings from REMIT_* vars).

The operator lives in ``remit_operator`` (installed with the ``operator`` extra); it is imported
only when this command runs, so the gateway and the CLI never need kopf.
"""

from __future__ import annotations

from remit.cli.common import fail


def operator() -> None:
    """Run the operator: watch MCPServers, AgentPolicies and ConsentGrants; push bundles; inject.

    Settings come from REMIT_-prefixed environment variables (docs/operator.md); Kubernetes
    credentials from the in-cluster service account or the current kubeconfig context.
    """
    try:
        from remit_operator.entry import run  # noqa: PLC0415 - optional dependency
        from remit_operator.errors import SettingsError  # noqa: PLC0415
        from remit_operator.settings import Settings  # noqa: PLC0415
    except ImportError as exc:
        fail(f"the operator is not installed ({exc}); install remit[operator]")
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        fail(str(exc))
    run(settings)
