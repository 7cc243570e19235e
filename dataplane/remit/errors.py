"""Every error Remit raises on purpose, in one hierarchy so callers can catch by concern.

    RemitError
    ├── ResourceError            a custom resource is invalid (names resource, field, reason;
    │                            a CEL error also gives the expression and its column)
    ├── LoadError                a file or directory of resources cannot be read or parsed
    ├── InvalidResourcesError    several resources are invalid (lists each ResourceError)
    ├── CompileError             resources cannot be compiled into a bundle for a server
    ├── BundleError              a bundle is malformed or cannot be trusted
    │   ├── SignatureError       bad signature, wrong key, or an algorithm other than EdDSA
    │   ├── RollbackError        a bundle with a lower serial than the one in force
    │   ├── WrongServerError     a bundle compiled for another MCPServer than this gateway's
    │   ├── StaleBundleError     a bundle issued longer ago than the gateway accepts
│   ├── DeltaBaseError       a bundle delta names a base other than the bundle in force
│   └── DeltaDigestError     a bundle delta does not yield the digest it was signed with
    ├── SigningKeyError          a signing or verification key cannot be loaded or saved
    ├── EvaluationError          a CEL condition failed at run time (the engine denies)
    ├── SettingsError            a setting (REMIT_* variable or flag) is missing or malformed
    ├── StartupError             the gateway cannot start (a port is taken, a file is unusable)
    ├── AuthenticationError      a caller's token cannot be verified (gateway)
    │   ├── InsufficientScopeError   the token is valid but lacks required scopes
    │   └── MissingCredentialsError  no bearer token at all (answered without an error code)
    ├── ProtocolError            an MCP message the gateway refuses before forwarding
    ├── ClientGoneError          the client disconnected before its answer was complete
    ├── UpstreamError            the MCP server could not be reached or failed
    ├── MediaTypeError           a Content-Type that is not one RFC 9110 media type
    ├── JsonDepthError           JSON nested deeper than the gateway's limit
    ├── SseEventTooLargeError    an SSE event grew past the gateway's limit
    ├── AuditError               a decision record cannot be written or verified
    ├── ConsentRequestError      a consent request link is forged, altered, expired or malformed
    ├── ConsentBusyError         the consent page is answering too many requests at once
    └── GrantStoreError          the consent service cannot write or read ConsentGrants
        └── GrantExistsError     the grant answering that consent request exists already

The operator's errors (``remit_operator.errors``) hang below ``RemitError`` too.

Errors are raised with ``raise ... from`` so the original cause stays attached.
"""

from __future__ import annotations

from collections.abc import Sequence


class RemitError(Exception):
    """Base of every error Remit raises on purpose."""


class ResourceError(RemitError):
    """A custom resource failed validation.

    ``resource`` is ``namespace/name`` (or the file when the name is unknown), ``field``
    a dotted path such as ``spec.rules[1].when``.
    """

    def __init__(self, resource: str, field: str, reason: str) -> None:
        self.resource = resource
        self.field = field
        self.reason = reason
        where = f"{resource}: {field}" if field else resource
        super().__init__(f"{where}: {reason}")


class LoadError(RemitError):
    """A file or directory of resources cannot be read or parsed."""


class InvalidResourcesError(RemitError):
    """Several resources failed validation; ``errors`` lists each one."""

    def __init__(self, errors: Sequence[RemitError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


class CompileError(RemitError):
    """Resources cannot be compiled into a bundle (e.g. the server does not exist)."""


class BundleError(RemitError):
    """A bundle is malformed or cannot be trusted."""


class SignatureError(BundleError):
    """A bundle's signature does not verify with the trusted key and algorithm."""


class RollbackError(BundleError):
    """A bundle's serial is lower than (or equal to, with other content) the one in force."""


class WrongServerError(BundleError):
    """A bundle's server (namespace/name) is not the one this gateway serves."""


class StaleBundleError(BundleError):
    """A bundle's ``issuedAt`` is older than the maximum bundle age (or in the future)."""


class UnsupportedBundleError(BundleError):
    """A signed bundle or delta uses a field or value this gateway does not know: a newer
    operator's feature. Refused, never ignored (``remit.policy.wire``)."""


class DeltaBaseError(BundleError):
    """A bundle delta applies to a base (serial, digest) that is not the bundle in force."""


class DeltaDigestError(BundleError):
    """A bundle delta, applied to its base, does not give the digest it was signed with."""


class SigningKeyError(RemitError):
    """A signing or verification key cannot be loaded, parsed or saved."""


class StartupError(RemitError):
    """The gateway cannot start: names the setting and the problem (port in use, bad file)."""


class AuthenticationError(RemitError):
    """A caller's credentials are missing or cannot be verified."""

    def __init__(self, reason: str, description: str) -> None:
        self.reason = reason
        self.description = description
        super().__init__(f"{reason}: {description}")


class InsufficientScopeError(AuthenticationError):
    """The token verifies but lacks one or more required scopes."""

    def __init__(self, missing: Sequence[str]) -> None:
        self.missing = list(missing)
        super().__init__("insufficient_scope", f"missing scopes: {' '.join(self.missing)}")


class EvaluationError(RemitError):
    """A condition failed at run time (missing key, type mismatch, non-bool result)."""


class SettingsError(RemitError):
    """A setting is missing or malformed (the message names the setting)."""


class ProtocolError(RemitError):
    """A message the gateway refuses before forwarding: JSON-RPC ``code``, HTTP ``status``, and
    ``reason``, the reason code (a ``remit.policy.decision.Reason`` value) its record carries."""

    def __init__(
        self,
        code: int,
        message: str,
        status: int = 400,
        id_: str | int | None = None,
        reason: str = "invalid_request",
    ):
        self.code = code
        self.message = message
        self.status = status
        self.id = id_
        self.reason = reason
        super().__init__(message)


class ClientGoneError(RemitError):
    """The client disconnected before its answer was complete (while its request body was
    read, or while its call was at the upstream)."""


class UpstreamError(RemitError):
    """The upstream could not be reached or failed; ``status`` is what the client gets,
    ``code`` a reason code (``remit.gateway.upstream``), ``reason`` a sentence for people."""

    def __init__(self, status: int, reason: str, code: str = "upstream_unavailable") -> None:
        self.status = status
        self.reason = reason
        self.code = code
        super().__init__(reason)

    @property
    def detail(self) -> str:
        """``code: reason``, as outcome records carry it."""
        return f"{self.code}: {self.reason}"


class MediaTypeError(RemitError):
    """A ``Content-Type`` value that is not one media type per RFC 9110."""


class JsonDepthError(RemitError):
    """A JSON value nested deeper than the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"JSON nested deeper than {limit} levels")


class JsonKeyCollisionError(RemitError):
    """A JSON object with two keys that differ only in case (``name`` and ``Name``).

    Decoders disagree on such objects (Go's ``encoding/json`` matches keys case-insensitively
    and keeps the last), so the gateway could decide on one reading while the peer acts on
    another: refused in both directions.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"JSON object has keys that differ only in case ({key!r})")


class SseEventTooLargeError(RemitError):
    """An SSE event grew past the limit before it was complete."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"an SSE event exceeded {limit} bytes")


class AuditError(RemitError):
    """A decision record cannot be written, or a chain of records does not verify."""


class MissingCredentialsError(AuthenticationError):
    """The request carries no bearer token (no ``Authorization`` header, or another scheme).

    RFC 6750 §3.1: such a 401 names no error code, only how to authenticate.
    """

    def __init__(self, description: str) -> None:
        super().__init__("invalid_request", description)


class ConsentRequestError(RemitError):
    """A consent request the consent page must refuse: not sealed by the gateway's key,
    altered, expired, or malformed."""


class ConsentBusyError(RemitError):
    """The consent page is answering too many consent requests at once to take another."""


class GrantStoreError(RemitError):
    """The consent service cannot create, change or list ConsentGrants."""


class GrantExistsError(GrantStoreError):
    """A ConsentGrant of that name exists already: the request was answered (one grant per
    consent request)."""
