"""The guard's refusals about what a caller holds: sessions, streams, server requests.

``quotas.py``, ``sessions.py`` and ``attribution.py`` keep the books; this module turns what
they say into the decisions and records the guard writes: an ``initialize`` beyond the
caller's session quota (``session_quota``), a GET stream beyond its stream quota
(``stream_quota``, 429), a client response that answers no request the upstream sent to that
session (``unmatched_response``), and a server message that belongs to no session of the
caller (``unattributed_message``, aggregated like other refusals).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from remit.gateway.attribution import Origin, ServerRequests, key_of
from remit.gateway.hooks import Rejection
from remit.gateway.notices import SERVER_NOTIFICATIONS, SERVER_REQUESTS
from remit.gateway.quotas import CallerLimits
from remit.gateway.recorder import Recorder
from remit.gateway.refusals import AnonymousRefusals
from remit.gateway.replies import stream_refusal
from remit.gateway.sessions import SessionBindings
from remit.gateway.state import Policy
from remit.policy.decision import Decision, Reason, deny
from remit.policy.request import Identity, Request


def judge_response(
    requests: ServerRequests,
    identity: Identity,
    session: str | None,
    id_: Any,
    digest: str,
) -> Decision:
    """Allow a client response only if it answers a request the upstream sent to ``session``
    (or to the caller, without one) and that is still unanswered."""
    if requests.answered(key_of(identity, session), id_):
        text = f"the client's response {id_!r} to a server request is relayed"
        return Decision("allow", Reason.ALLOWED, text, digest)
    text = f"response {id_!r} answers no request the server sent to this session"
    return deny(Reason.UNMATCHED_RESPONSE, text, digest)


def session_quota(sessions: SessionBindings, digest: str) -> Decision:
    """The denial of an ``initialize`` from a caller holding its quota of sessions."""
    text = (
        f"the caller holds {sessions.per_identity} sessions, its quota; end one "
        "(DELETE) before starting another"
    )
    return deny(Reason.SESSION_QUOTA, text, digest)


async def stream_quota(
    recorder: Recorder,
    policy: Policy,
    request: Request,
    session: str | None,
    limits: CallerLimits,
) -> Rejection:
    """Record and answer (429) a GET stream beyond the caller's quota of open streams."""
    text = f"the caller has {limits.streams_per_identity} streams open, its quota"
    record = await recorder.refusal(policy, request, Reason.STREAM_QUOTA, text, session=session)
    return stream_refusal(429, f"Too Many Streams: {text}", record.id, Reason.STREAM_QUOTA)


async def unattributed(
    refusals: AnonymousRefusals,
    policy: Policy | None,
    identity: Identity,
    message: Mapping[str, Any],
    origin: Origin,
) -> None:
    """Record (aggregated) a server message dropped because it names no session of the
    caller's. The record's kind is the method when it is one the protocol defines."""
    method = message.get("method")
    known = method if method in SERVER_REQUESTS or method in SERVER_NOTIFICATIONS else "other"
    text = f"server message {known} arrived on a stream no session of the caller owns; dropped"
    await refusals.refuse(
        policy, None, Reason.UNATTRIBUTED_MESSAGE, str(known), text,
        identity=identity, session=origin.session, method=str(known),
    )  # fmt: skip


__all__ = ["judge_response", "session_quota", "stream_quota", "unattributed"]
