"""The bundle in force in one gateway, swapped atomically when a new one arrives.

A bundle arrives signed (``PUT /v1/bundle`` from the operator) or is installed directly by the
standalone gateway, which compiled it itself. A signed bundle must verify with the trusted
public key and carry a higher serial than the one in force (a rollback is refused); the same
serial with the same digest is an idempotent re-push. Until a bundle is installed the gateway
is not ready and denies every MCP request.

Every signed bundle is also bound to one server and one period: its ``server`` (namespace/name)
must be the gateway's own (the operator signs every server's bundle with one key, so the
signature alone does not say which sidecar a bundle is for), and its ``issuedAt`` must be at
most ``max_age`` seconds old (a freshly started sidecar has no serial to compare, so without
this any older bundle ever signed would be accepted) and not in the future beyond clock skew.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from joserfc.jwk import OKPKey

from remit.errors import (
    BundleError,
    DeltaBaseError,
    RollbackError,
    StaleBundleError,
    WrongServerError,
)
from remit.policy.bundle import Bundle
from remit.policy.delta import apply_delta
from remit.policy.engine import Engine
from remit.policy.signing import verify, verify_delta
from remit.times import utc_text

DEFAULT_MAX_BUNDLE_AGE = 7 * 24 * 3600.0
CLOCK_SKEW = 300.0


def release_memory() -> None:
    """Give the memory of a replaced bundle and of parsing a new one back to the system.

    A 10,000-grant bundle is parsed from a few MB of JSON; without this the allocator keeps the
    peak for the life of the pod, and sidecar memory is a product figure.
    """
    gc.collect()
    libc = ctypes.util.find_library("c")
    if libc:
        with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
            ctypes.CDLL(libc).malloc_trim(0)


@dataclass(frozen=True, slots=True)
class Policy:
    """A bundle and the engine built from it: replaced together, never mutated."""

    bundle: Bundle
    engine: Engine


class PolicyState:
    """Holds the current ``Policy``; readers take ``current`` once per request."""

    def __init__(
        self,
        public_key: OKPKey | None = None,
        *,
        server: str = "",
        max_age: float = DEFAULT_MAX_BUNDLE_AGE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``server`` is ``namespace/name``: a signed bundle for any other server is refused."""
        self._public_key = public_key
        self.server = server
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self.current: Policy | None = None

    @property
    def public_key(self) -> OKPKey | None:
        """The key signed bundles (and consent deliveries) must verify with."""
        return self._public_key

    def install_signed(self, token: bytes | str) -> tuple[Bundle, bool]:
        """Verify, check and install a signed bundle; return it and whether it changed anything.

        Raises ``SignatureError``/``BundleError`` (does not verify, malformed),
        ``WrongServerError``, ``StaleBundleError`` or ``RollbackError``.
        """
        if self._public_key is None:
            raise BundleError("this gateway has no bundle verification key configured")
        bundle = verify(token, self._public_key)
        self._check_server(bundle)
        self._check_age(bundle)
        changed = self.install(bundle)
        release_memory()
        return bundle, changed

    def install_delta(self, token: bytes | str) -> tuple[Bundle, bool]:
        """Verify a signed bundle delta, apply it to the bundle in force and install the result.

        The delta must name this gateway's server and the exact bundle in force (serial and
        digest, checked again under the lock of the swap), and the result must have the digest
        it was signed with. Raises what ``install_signed`` raises, ``DeltaBaseError`` and
        ``DeltaDigestError``; on any of them the bundle in force stays.
        """
        if self._public_key is None:
            raise BundleError("this gateway has no bundle verification key configured")
        delta = verify_delta(token, self._public_key)
        self._check_ref(delta.server)
        current = self.current
        if current is None:
            raise DeltaBaseError("no bundle in force to apply a delta to")
        bundle = apply_delta(current.bundle, delta)
        self._check_age(bundle)
        changed = self.install(bundle, base=current.bundle)
        release_memory()
        return bundle, changed

    def _check_server(self, bundle: Bundle) -> None:
        self._check_ref(f"{bundle.server.namespace}/{bundle.server.name}")

    def _check_ref(self, ref: str) -> None:
        if not self.server:
            raise WrongServerError(
                f"bundle is for server {ref}, but this gateway does not know its own server "
                "(REMIT_SERVER); it installs no signed bundle"
            )
        if ref != self.server:
            raise WrongServerError(
                f"bundle is for server {ref}, but this gateway serves {self.server}"
            )

    def _check_age(self, bundle: Bundle) -> None:
        issued = bundle.issued_at.astimezone(UTC)
        now = self._clock()
        age = now - issued.timestamp()
        stamp = utc_text(issued, "seconds")
        if age > self.max_age:
            raise StaleBundleError(
                f"bundle issued at {stamp} is {age:.0f} s old; this gateway accepts bundles up "
                f"to {self.max_age:g} s old (REMIT_MAX_BUNDLE_AGE_SECONDS)"
            )
        if age < -CLOCK_SKEW:
            clock = utc_text(datetime.fromtimestamp(now, UTC), "seconds")
            raise StaleBundleError(
                f"bundle issued at {stamp} is in the future (this gateway's clock says {clock})"
            )

    def install(self, bundle: Bundle, *, base: Bundle | None = None) -> bool:
        """Install ``bundle``; False if it is the one already in force (same serial and digest).

        Raises ``RollbackError`` for a lower serial, or the same serial with other content, and
        ``DeltaBaseError`` if ``base`` is given and is no longer the bundle in force.
        """
        engine = Engine(bundle)  # built before taking the lock: compiling CEL takes a while
        with self._lock:
            current = self.current
            if base is not None and (current is None or current.bundle is not base):
                raise DeltaBaseError("the bundle in force changed while the delta was applied")
            if current is not None:
                serial = current.bundle.serial
                if bundle.serial == serial and bundle.digest == current.bundle.digest:
                    return False
                if bundle.serial <= serial:
                    raise RollbackError(
                        f"bundle serial {bundle.serial} is not newer than {serial} in force"
                    )
            self.current = Policy(bundle, engine)
        return True

    @property
    def ready(self) -> bool:
        """Whether a bundle is in force."""
        return self.current is not None
