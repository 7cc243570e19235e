"""The bundle in force in one gateway, swapped atomically when a new one arrives.

A bundle arrives signed (``PUT /v1/bundle`` from the operator) or is installed directly by the
standalone gateway, which compiled it itself. A signed bundle must verify with the trusted
public key and carry a higher serial than the one in force (a rollback is refused); the same
serial with the same digest is an idempotent re-push. Until a bundle is installed the gateway
is not ready and denies every MCP request.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import threading
from dataclasses import dataclass

from joserfc.jwk import OKPKey

from remit.errors import BundleError, RollbackError
from remit.policy.bundle import Bundle
from remit.policy.engine import Engine
from remit.policy.signing import verify


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

    def __init__(self, public_key: OKPKey | None = None) -> None:
        self._public_key = public_key
        self._lock = threading.Lock()
        self.current: Policy | None = None

    def install_signed(self, token: bytes | str) -> tuple[Bundle, bool]:
        """Verify and install a signed bundle; return it and whether it changed anything."""
        if self._public_key is None:
            raise BundleError("this gateway has no bundle verification key configured")
        bundle = verify(token, self._public_key)
        changed = self.install(bundle)
        release_memory()
        return bundle, changed

    def install(self, bundle: Bundle) -> bool:
        """Install ``bundle``; False if it is the one already in force (same serial and digest).

        Raises ``RollbackError`` for a lower serial, or the same serial with other content.
        """
        engine = Engine(bundle)  # built before taking the lock: compiling CEL takes a while
        with self._lock:
            current = self.current
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
