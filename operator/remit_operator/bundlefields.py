"""Which sidecars are too old for the bundle: told to users before (not after) a push fails.

A bundle field added after format 1 is written only when a feature uses it, and a sidecar
that does not know a field a bundle uses refuses that bundle and keeps its last good one
(``remit.policy.wire``, docs/architecture.md "Compatibility across versions"). Each sidecar
lists the later fields it knows in ``GET /v1/status`` as ``bundleFields`` (absent: format 1
only). This keeps what each sidecar process reported, per pod and incarnation (a restarted
gateway, possibly on a newer image, is asked again), and compares it with the fields the
signed bundle uses (``Signed.uses``). The syncer still pushes to a sidecar that is too old
(it refuses and keeps enforcing its last bundle: fail closed), but the MCPServer says why
(``Ready=False``, reason ``SidecarsTooOld``, naming the fields and the pods), a Warning
Event names each pod once, and ``remit_operator_sidecars{state="too_old"}`` counts them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from remit_operator.index import Sidecar
from remit_operator.push import PushResult

TooOld = tuple[tuple[str, tuple[str, ...]], ...]
"""Pods too old for the bundle, each with the fields it uses that the pod does not know."""

MAX_PODS_NAMED = 10


class BundleFields:
    """What the sidecars of one MCPServer reported they know, and who was already warned."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[str, frozenset[str]]] = {}  # pod → (incarnation, fields)
        self._warned: set[tuple[str, str, tuple[str, ...]]] = set()  # (pod, incarnation, miss)

    def note(self, outcome: PushResult) -> None:
        """Keep what a status read says the sidecar knows (pushes do not say)."""
        if outcome.error is None and outcome.fields is not None:
            sidecar = outcome.sidecar
            self._known[sidecar.pod] = (sidecar.incarnation, outcome.fields)

    def retain(self, live: set[str]) -> None:
        """Forget pods that are gone."""
        self._known = {pod: known for pod, known in self._known.items() if pod in live}
        self._warned = {w for w in self._warned if w[0] in live}

    def unknown(self, sidecars: Iterable[Sidecar]) -> list[Sidecar]:
        """The sidecars whose current process has not said what it knows."""
        return [s for s in sidecars if self._known.get(s.pod, ("", None))[0] != s.incarnation]

    def too_old(self, sidecars: Sequence[Sidecar], uses: frozenset[str]) -> TooOld:
        """Each sidecar (as last reported) that lacks a field the bundle uses, by pod name."""
        found = []
        for sidecar in sidecars:
            incarnation, fields = self._known.get(sidecar.pod, ("", frozenset()))
            if incarnation == sidecar.incarnation and not uses <= fields:
                found.append((sidecar.pod, tuple(sorted(uses - fields))))
        return tuple(sorted(found))

    def to_warn(self, sidecars: Sequence[Sidecar], too_old: TooOld) -> TooOld:
        """The entries of ``too_old`` not warned about yet (once per pod process and fields)."""
        incarnations = {s.pod: s.incarnation for s in sidecars}
        self._warned = {w for w in self._warned if incarnations.get(w[0], w[1]) == w[1]}
        new = []
        for pod, missing in too_old:
            key = (pod, incarnations.get(pod, ""), missing)
            if key not in self._warned:
                self._warned.add(key)
                new.append((pod, missing))
        return tuple(new)


def describe(too_old: TooOld) -> str:
    """One line naming the fields and the pods that lack them, and what to do."""
    by_fields: dict[tuple[str, ...], list[str]] = {}
    for pod, missing in too_old:
        by_fields.setdefault(missing, []).append(pod)
    parts = []
    for missing, pods in sorted(by_fields.items()):
        named = ", ".join(pods[:MAX_PODS_NAMED])
        if len(pods) > MAX_PODS_NAMED:
            named += f" and {len(pods) - MAX_PODS_NAMED} more"
        parts.append(f"bundle field(s) {', '.join(missing)} unknown to sidecar(s) of {named}")
    return (
        f"{len(too_old)} sidecar(s) too old for this bundle: {'; '.join(parts)}. They refuse it "
        "and keep enforcing their last bundle; restart those pods on the current sidecar image "
        "(or stop using the feature)"
    )
