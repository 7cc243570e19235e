"""Pushing one bundle to many pods: one encoded buffer shared by every request, memory that does
not grow with the number of pods, and unresponsive pods of one server that cannot delay
another server's revocation (real sidecars, black-hole addresses that accept and never answer).
"""

from __future__ import annotations

import os
import select
import socket
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kmock
import pytest

from remit.demo.issuer import Issuer
from remit_operator.index import Sidecar as Target
from remit_operator.push import Pusher
from tests.operator.sink import sink
from tests.operator.support import (
    AUDIENCE,
    NAMESPACE,
    RunningOperator,
    app_pod,
    apply,
    eventually,
    fleet,
    free_everywhere,
    gateway_status,
    injected,
    operator_settings,
    patch,
    post_pod,
    running_operator,
    server_doc,
    status_of,
)
from tests.support.policies import grant, policy, rule

BUNDLE = 1024 * 1024
WRITE = ("write_file", {"path": "/data/alice/notes.txt", "content": "hi"})


async def test_every_pod_is_sent_the_same_encoded_buffer(
    k8s: kmock.KubernetesEmulator,
    operator: RunningOperator,
    issuer: Issuer,
    upstream: str,
    tmp_path: Path,
) -> None:
    """The bundle is encoded once per bundle: every PUT of a fan-out sends the very same bytes
    object (one encode), not a copy per pod."""
    async with fleet(k8s, operator, issuer.issuer, issuer.jwks_uri, upstream, 4, tmp_path) as f:
        pusher = operator.runtime.pusher
        sent: list[bytes] = []
        original = pusher._send

        async def recording(
            sidecar: Target, method: str, url: str, content: bytes | None
        ) -> object:
            if method == "PUT" and content is not None:
                sent.append(content)
            return await original(sidecar, method, url, content)

        pusher._send = recording  # type: ignore[method-assign,assignment]
        try:
            await apply(k8s, policy("support-bot", rule("read", tools=["read_*"])))
            await f.in_sync(previous=f.server_digest())
        finally:
            pusher._send = original  # type: ignore[method-assign]
    assert len(sent) == 4
    assert all(content is sent[0] for content in sent)


def _targets(count: int) -> list[Target]:
    return [
        Target(f"{NAMESPACE}/p{i}", f"{NAMESPACE}/files", "127.0.0.1", True, True, None, str(i))
        for i in range(count)
    ]


async def test_push_memory_does_not_grow_with_the_number_of_pods(tmp_path: Path) -> None:
    """64 pods of a 1 MiB bundle peak like 4 pods: the buffer is shared, and what the transport
    copies is bounded by the concurrency, not by the pods (a copy per pod would add 60 MiB)."""
    token = os.urandom(BUNDLE)
    pusher = Pusher(operator_settings(tmp_path, {"REMIT_PUSH_CONCURRENCY": "4"}))

    async def peak(pods: int) -> int:
        tracemalloc.start()
        try:
            outcomes = await pusher.push_all(_targets(pods), port, lambda _: [token])
            _, top = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert all(o.ok for o in outcomes), outcomes[0]
        return top

    with sink() as port:
        try:
            few = await peak(4)
            many = await peak(64)
        finally:
            await pusher.close()
    assert many < few + BUNDLE, (few, many)


@pytest.fixture
def black_holes() -> Iterator[tuple[list[str], int, list[socket.socket]]]:
    """Four addresses whose admin port accepts connections into the backlog and never answers."""
    ips = [f"127.0.0.{n}" for n in range(81, 85)]
    port = free_everywhere(ips)
    sockets = []
    for ip in ips:
        sock = socket.socket()
        sock.bind((ip, port))
        sock.listen(64)
        sockets.append(sock)
    yield ips, port, sockets
    for sock in sockets:
        sock.close()


def _waiting(sockets: list[socket.socket]) -> int:
    """How many black holes have a connection waiting in their backlog (never accepted)."""
    readable, _, _ = select.select(sockets, [], [], 0)
    return len(readable)


async def test_unresponsive_pods_of_one_server_do_not_delay_another_servers_revocation(
    k8s: kmock.KubernetesEmulator,
    issuer: Issuer,
    upstream: str,
    tmp_path: Path,
    black_holes: tuple[list[str], int, list[socket.socket]],
) -> None:
    """ "slow" has four pods that never answer; with one global limit of 2 they held every slot
    for the 4 s timeout of each attempt and "files" waited behind them. Now each server has its own
    share and a revocation on "files" reaches its sidecar at once."""
    ips, slow_admin, holes = black_holes
    settings = operator_settings(
        tmp_path, {"REMIT_PUSH_CONCURRENCY": "2", "REMIT_PUSH_TIMEOUT_SECONDS": "4.0"}
    )
    async with (
        running_operator(k8s, settings) as operator,
        fleet(
            k8s, operator, issuer.issuer, issuer.jwks_uri, upstream, 1, tmp_path, first_ip=80
        ) as files,
    ):
        await apply(
            k8s,
            policy(
                "support-bot",
                rule("read", tools=["read_*"]),
                rule("write", tools=["write_file"], consent=True),
            ),
        )
        expires = datetime.now(UTC) + timedelta(hours=1)
        await apply(k8s, grant("alice", tools=["write_file"], expires_at=expires))
        before = await files.in_sync(previous=files.server_digest())
        token = issuer.mint("alice@example.com", agent="support-bot", audience=AUDIENCE)
        assert await files.decide_all(token, *WRITE) == {"allowed"}

        slow = server_doc(issuer.issuer, issuer.jwks_uri, slow_admin + 1, slow_admin)
        slow["metadata"]["name"] = "slow"
        slow["spec"]["selector"] = {"matchLabels": {"app": "slow-mcp"}}
        await apply(k8s, slow)
        await eventually(lambda: status_of(k8s, "MCPServer", "slow").get("bundleDigest"))
        for n, ip in enumerate(ips):
            pod = await injected(settings, app_pod(f"slow-{n}", {"app": "slow-mcp"}))
            await post_pod(k8s, pod, gateway_status(ip, started=True))
        # "slow" now has requests hanging on its black holes (connections in the backlog).
        # (the first push round, to the first pod alone, lasts the whole push deadline)
        await eventually(lambda: _waiting(holes) >= 2, timeout=25)

        started = time.monotonic()
        await patch(k8s, "ConsentGrant", "alice", {"spec": {"revoked": True}})
        await files.in_sync(previous=before, timeout=15)
        took = time.monotonic() - started
        still_hanging = _waiting(holes)
        assert await files.decide_all(token, *WRITE) == {"denied"}
    # "slow" still had requests hanging on its black holes when "files" enforced the revocation.
    assert still_hanging >= 1
    assert took < 2.0, f"revocation on files took {took:.2f}s behind slow's unresponsive pods"
