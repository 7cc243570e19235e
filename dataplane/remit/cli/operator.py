"""``remit operator``: run the Kubernetes operator in this process (settings from REMIT_* vars).

The operator lives in ``remit_operator`` (installed with the ``operator`` extra); it is imported
only when this command runs, so the gateway and the CLI never need kopf. ``remit operator``
with no flags (the chart's Deployment) starts through ``main``, without Typer, Rich and every
other command's imports (``remit.cli.entry``) and without httpx's command-line client: about
24 MiB of the operator's resident memory.
"""

from __future__ import annotations

import sys

from remit.errors import RemitError


def _start() -> str | None:
    """Run the operator until it stops; the error to report when it cannot start (a bad
    setting is one line naming it, also when importing the package reads the settings)."""
    try:
        from remit_operator.entry import run  # noqa: PLC0415 - optional dependency
        from remit_operator.settings import Settings  # noqa: PLC0415

        settings = Settings.from_env()
    except ImportError as exc:
        return f"the operator is not installed ({exc}); install remit[operator]"
    except RemitError as exc:
        return str(exc)
    run(settings)
    return None


def main() -> int:
    """``remit operator`` as the Deployment runs it: the exit code (2: cannot start)."""
    # httpx imports its command-line client (Rich, Pygments, Click: ~4 MiB) whenever those are
    # installed, as they are with the CLI; the operator never runs it, and httpx does without it.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    error = _start()
    if error is None:
        return 0
    print(f"error: {error}", file=sys.stderr)
    return 2


def operator() -> None:
    """Run the operator: watch MCPServers, AgentPolicies and ConsentGrants; push bundles; inject.

    Settings come from REMIT_-prefixed environment variables (docs/operator.md); Kubernetes
    credentials from the in-cluster service account or the current kubeconfig context.
    """
    error = _start()
    if error is not None:
        from remit.cli.common import fail  # noqa: PLC0415

        fail(error)
