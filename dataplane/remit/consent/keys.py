"""The consent service's link keys, read from their files and re-read when they rotate.

In a cluster the key is the Secret the operator delivers to the sidecars (``key``), mounted
as a volume; during a rotation the Secret also holds ``previous`` (the key or keys links were
sealed with before). The kubelet updates the mounted files in place, so the service re-reads
them when a link names a key it does not hold (at most every ``RECHECK_SECONDS``), and keeps
a key it saw superseded for ``MAX_REQUEST_SECONDS`` (the longest a link lives) even if
``previous`` was not set: a rotation never breaks a link issued before it. A link naming a
key that is neither current, previous nor recently superseded is refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from remit.errors import SettingsError
from remit.policy.consentkeys import MAX_REQUEST_SECONDS, parse_keys
from remit.policy.consentrequest import ConsentRequest, ConsentSealer, load_consent_key

log = logging.getLogger(__name__)
RECHECK_SECONDS = 1.0
MAX_PREVIOUS_BYTES = 16 * 1024


def read_previous(path: Path | None) -> list[bytes]:
    """The previous keys in ``path`` (absent file: none)."""
    if path is None:
        return []
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_PREVIOUS_BYTES + 1)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise SettingsError(f"REMIT_CONSENT_PREVIOUS_KEY_FILE: cannot read {path}: "
                            f"{exc.strerror}") from exc  # fmt: skip
    if len(data) > MAX_PREVIOUS_BYTES:
        raise SettingsError(
            f"REMIT_CONSENT_PREVIOUS_KEY_FILE: more than {MAX_PREVIOUS_BYTES} bytes"
        )
    try:
        return parse_keys(data)
    except ValueError as exc:
        raise SettingsError(f"REMIT_CONSENT_PREVIOUS_KEY_FILE: {exc}") from exc


class LinkKeys:
    """Opens consent links with the keys in ``key_file`` and ``previous_file``."""

    def __init__(
        self,
        key_file: Path,
        previous_file: Path | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key_file = key_file
        self.previous_file = previous_file
        self.clock = clock
        self._current = load_consent_key(key_file)
        self._previous = read_previous(previous_file)
        self._superseded: dict[bytes, float] = {}  # key -> monotonic time it is dropped
        self._read_at = clock()
        self.sealer = ConsentSealer(self._current, self._previous)

    def open(self, token: str, now: float) -> ConsentRequest:
        """The request in ``token`` (``ConsentRequestError`` if forged, retired or expired)."""
        if not self.sealer.knows(token) and self.clock() - self._read_at >= RECHECK_SECONDS:
            self.reload()
        return self.sealer.open(token, now)

    def reload(self) -> None:
        """Re-read the files; a failure keeps the keys held (and is logged)."""
        self._read_at = self.clock()
        try:
            current = load_consent_key(self.key_file)
            previous = read_previous(self.previous_file)
        except SettingsError as exc:
            log.warning("consent link keys not re-read: %s", exc)
            return
        now = self.clock()
        if current != self._current:
            self._superseded[self._current] = now + MAX_REQUEST_SECONDS
            log.info("consent link key rotated; the previous one opens links for %ss",
                     MAX_REQUEST_SECONDS)  # fmt: skip
        self._superseded = {k: t for k, t in self._superseded.items() if t > now}
        self._superseded.pop(current, None)
        self._current, self._previous = current, previous
        self.sealer = ConsentSealer(current, [*previous, *self._superseded])


__all__ = ["LinkKeys", "read_previous"]
