"""Which hook decides each message of a POST body, and what the proxy forwards if all pass.

Requests, client responses, and notifications the protocol does not define for clients, are
*decided* (the hooks record them): one ``decide`` for a single message, one ``decide_batch``
for a batch, so a batch is judged whole before anything in it is recorded as allowed.
Protocol notifications go to ``admit_message`` first (it records nothing).
The result is either the first denial, or what to forward: the upstream headers, the calls
awaiting a response and the decided notifications (which end when the upstream accepts them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from remit.gateway.hooks import Admit, Deny, GatewayHooks, HttpRequest, Identity
from remit.gateway.pending import Call
from remit.gateway.protocol import (
    VERSION_HEADER,
    Body,
    Message,
    RequestId,
    is_client_notification,
)


@dataclass
class Admission:
    """The verdict on a body: ``denied`` (the first denied message and its denial), or the
    calls, notices and upstream headers to forward."""

    denied: tuple[Message, Deny] | None = None
    calls: dict[RequestId, Call] = field(default_factory=dict)
    notices: list[Call] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


def decided(message: Message, version: str | None) -> bool:
    """Whether ``message`` is decided and recorded: every request, every client response (the
    answer to a sampling, elicitation or roots request still reaches the upstream), and every
    notification but those the protocol defines for clients (a ``tools/call`` without an id
    is still a call)."""
    if message.kind in ("request", "response"):
        return True
    return message.kind == "notification" and not is_client_notification(message.method, version)


async def admit(
    hooks: GatewayHooks, identity: Identity, body: Body, request: HttpRequest
) -> Admission:
    """Ask the hooks about every message of ``body``; see the module docstring."""
    version = request.header(VERSION_HEADER)
    chosen = [i for i, message in enumerate(body.messages) if decided(message, version)]
    verdicts: dict[int, Admit | Deny] = {}
    for index, message in enumerate(body.messages):  # these record nothing
        if index not in chosen:
            verdicts[index] = await hooks.admit_message(identity, message)
    if body.batch:
        answers = await hooks.decide_batch(identity, [body.messages[i] for i in chosen], request)
        verdicts.update(zip(chosen, answers, strict=True))
    elif chosen:
        verdicts[0] = await hooks.decide(identity, body.messages[0], request)
    admission = Admission()
    admits: list[Admit] = []
    for index, message in enumerate(body.messages):
        verdict = verdicts[index]
        if isinstance(verdict, Deny):
            admission.denied = (message, verdict)
            return admission
        if message.kind == "request" and message.id is not None:
            admission.calls[message.id] = Call(message, verdict.token)
        elif index in chosen:
            admission.notices.append(Call(message, verdict.token))
        admits.append(verdict)
    admission.headers = merge(admits)
    return admission


def merge(admits: list[Admit]) -> dict[str, str]:
    """Upstream headers of every admitted message; a batch's differing values are joined."""
    if len(admits) == 1:
        return dict(admits[0].upstream_headers)
    merged: dict[str, str] = {}
    for verdict in admits:
        for name, value in verdict.upstream_headers.items():
            previous = merged.get(name)
            merged[name] = value if previous in (None, value) else f"{previous}, {value}"
    return merged


def resumable(request: HttpRequest) -> Iterable[tuple[str, str]]:
    """The client's headers, without ``Last-Event-ID`` unless the request is a GET (only a GET
    resumes a stream; the hooks pass the id they accept in ``upstream_headers``)."""
    if request.method == "GET":
        return request.headers
    return tuple((name, value) for name, value in request.headers if name != "last-event-id")


__all__ = ["Admission", "admit", "decided", "merge", "resumable"]
