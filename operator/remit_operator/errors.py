"""The operator's own errors, under ``remit.errors.RemitError`` so callers can catch by concern.

    RemitError                      (remit.errors)
    └── OperatorError               anything the operator raises on purpose
        ├── SettingsError           a REMIT_* environment variable is invalid (names it)
        ├── KubeError               a Kubernetes API call failed (status code and message)
        │   └── NotFoundError       the object does not exist (404)
        ├── PushError               a sidecar did not take a bundle (address and reason)
        │   └── SidecarRollbackError  the sidecar holds a newer serial (409; carries it)
        └── InjectionError          a pod matches an MCPServer but cannot be injected

Errors are raised with ``raise ... from`` so the original cause stays attached.
"""

from __future__ import annotations

from remit.errors import RemitError


class OperatorError(RemitError):
    """Base of every error the operator raises on purpose."""


class SettingsError(OperatorError):
    """An environment variable has a value the operator cannot use."""


class KubeError(OperatorError):
    """A Kubernetes API request failed."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"Kubernetes API answered {status}: {message}")


class NotFoundError(KubeError):
    """The requested object does not exist."""


class PushError(OperatorError):
    """A sidecar refused a bundle, or could not be reached within the retries."""

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"{address}: {reason}")


class SidecarRollbackError(PushError):
    """The sidecar holds a bundle with a higher serial than the one pushed."""

    def __init__(self, address: str, serial: int | None) -> None:
        self.serial = serial
        super().__init__(address, f"refused as a rollback (sidecar serial {serial})")


class InjectionError(OperatorError):
    """A pod matches an MCPServer but the gateway cannot be injected; the pod is refused."""
