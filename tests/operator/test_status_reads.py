"""One resync pass reads each sidecar's status once: the key deliveries reuse what the pass
already read from the same sidecar process, and read only what it did not."""

from __future__ import annotations

from pathlib import Path

from remit_operator.index import Sidecar
from remit_operator.push import Pusher, PushResult
from tests.operator.support import operator_settings


def _sidecar(pod: str, incarnation: str = "1") -> Sidecar:
    return Sidecar(pod, "ns/files", "127.0.0.1", True, True, None, incarnation)


class CountingPusher(Pusher):
    """A Pusher whose status reads are counted instead of sent."""

    reads: list[str]

    async def status(self, sidecar: Sidecar, admin_port: int) -> PushResult:
        self.reads.append(sidecar.pod)
        return PushResult(sidecar, digest="fresh")


async def test_a_status_this_pass_read_is_not_read_again(tmp_path: Path) -> None:
    pusher = CountingPusher(operator_settings(tmp_path))
    pusher.reads = []
    try:
        a, b, c, d = _sidecar("ns/a"), _sidecar("ns/b"), _sidecar("ns/c", "2"), _sidecar("ns/d")
        known = {
            "ns/a": PushResult(a, digest="observed"),
            "ns/b": PushResult(b, error="timed out"),  # failed: read again
            "ns/c": PushResult(_sidecar("ns/c", "1"), digest="old"),  # another process: again
        }
        outcomes = await pusher.status_all([a, b, c, d], 9090, known)
    finally:
        await pusher.close()
    assert sorted(pusher.reads) == ["ns/b", "ns/c", "ns/d"]
    by_pod = {o.sidecar.pod: o.digest for o in outcomes}
    assert by_pod == {"ns/a": "observed", "ns/b": "fresh", "ns/c": "fresh", "ns/d": "fresh"}
