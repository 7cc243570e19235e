"""Which sidecars take bundle deltas, what each holds, and the signed deltas to send them.

A grant change should cost a push proportional to the change, not to the bundle
(``remit.policy.delta``). For that the operator must know, per sidecar, that it accepts deltas
(it says so in its status and in its answer to a push; an older image does not, and only ever
gets full bundles) and exactly which bundle it holds (serial and digest, as it reported them),
and it must still have that bundle to diff against. The bundles kept are the last few signed
ones (``KEEP_BASES``), so memory stays bounded, and of those only the ones a sidecar is known to
hold (``prune``, after every push round), so at rest a server keeps one bundle, not two (1,000
MCPServers at 10 grants each: about 4 MiB); a sidecar whose base is gone, unknown, or of another
incarnation gets the full bundle. A delta is signed once per (base, bundle, key) and
shared by every sidecar holding that base.
"""

from __future__ import annotations

from collections.abc import Iterable

from joserfc.jwk import OKPKey

from remit.policy.bundle import Bundle
from remit.policy.delta import build_delta
from remit.policy.signing import sign_delta
from remit_operator.index import Sidecar
from remit_operator.push import PushResult

KEEP_BASES = 2  # the bundle being pushed and the one before it

Base = tuple[int, str]  # serial, digest


class Deltas:
    """Per-server bookkeeping for delta pushes (one per ``Syncer``)."""

    def __init__(self) -> None:
        self._bases: dict[Base, Bundle] = {}  # insertion order: oldest first
        self._holds: dict[str, tuple[str, Base]] = {}  # pod → (incarnation, base)
        self._takes: dict[str, str] = {}  # pod → incarnation that advertised deltas
        self._signed: dict[tuple[Base, Base, str], bytes | None] = {}

    def remember(self, bundle: Bundle) -> None:
        """Keep a newly signed bundle as a possible base; forget the oldest beyond the bound."""
        self._bases[(bundle.serial, bundle.digest)] = bundle
        while len(self._bases) > KEEP_BASES:
            oldest = next(iter(self._bases))
            del self._bases[oldest]
            self._signed = {k: v for k, v in self._signed.items() if oldest not in k[:2]}

    def prune(self, current: Bundle) -> None:
        """Forget every kept bundle but ``current`` that no sidecar is known to hold: no delta
        can be built from it any more (a sidecar that reports it later gets the full bundle)."""
        keep = {(current.serial, current.digest)} | {base for _, base in self._holds.values()}
        gone = [base for base in self._bases if base not in keep]
        for base in gone:
            del self._bases[base]
        if gone:
            self._signed = {k: v for k, v in self._signed.items() if not set(k[:2]) & set(gone)}

    def note(self, outcome: PushResult) -> None:
        """Record what a sidecar answered: whether it takes deltas, which bundle it holds."""
        sidecar = outcome.sidecar
        if outcome.takes_delta:
            self._takes[sidecar.pod] = sidecar.incarnation
        if outcome.error is None and outcome.digest is not None and outcome.serial is not None:
            self._holds[sidecar.pod] = (sidecar.incarnation, (outcome.serial, outcome.digest))
        elif outcome.error is not None:
            self._holds.pop(sidecar.pod, None)  # unknown now: the next push is in full

    def retain(self, pods: Iterable[str]) -> None:
        """Forget pods that are gone."""
        live = set(pods)
        self._holds = {p: h for p, h in self._holds.items() if p in live}
        self._takes = {p: i for p, i in self._takes.items() if p in live}

    def tokens(self, sidecar: Sidecar, bundle: Bundle, keys: Iterable[OKPKey]) -> list[bytes]:
        """Signed deltas (one per candidate key) that bring ``sidecar`` to ``bundle``; empty
        when the sidecar must get the full bundle."""
        if self._takes.get(sidecar.pod) != sidecar.incarnation:
            return []
        held = self._holds.get(sidecar.pod)
        if held is None or held[0] != sidecar.incarnation:
            return []
        base = self._bases.get(held[1])
        target: Base = (bundle.serial, bundle.digest)
        if base is None or held[1] == target:
            return []
        found = []
        for key in keys:
            cache = (held[1], target, str(key.kid))
            if cache not in self._signed:
                delta = build_delta(base, bundle)
                self._signed[cache] = None if delta is None else sign_delta(delta, key).encode()
            token = self._signed[cache]
            if token is not None:
                found.append(token)
        return found
