"""The three kinds of line in a decision log, as typed values.

A log is a sequence of JSON lines, each one of (``type``):

- ``decision``: what was decided about one request, written *before* it is forwarded;
- ``outcome``: how that request ended (``decisionId`` points at its decision line);
- ``chain``: a segment marker written when a gateway process starts writing (see ``chain.py``).

Every line also carries ``prev`` (the previous line's ``hash``, or 64 zeros at the start of a
chain) and ``hash``, the sha256 hex of the line's canonical JSON without ``hash`` (see
``canonical.py``). A record built in memory has both empty; :func:`remit.audit.lines.seal`
fills them and produces the line.

Across releases (docs/architecture.md, "Compatibility across versions"): every field added to a
record after its first release has a default that msgspec's ``omit_defaults`` recognises
exactly (``None``, ``""``, ``()``, a small integer, a boolean), so a line that does not use it
is the bytes an older gateway writes, older CLIs read it, and newer CLIs re-encode older lines
to the exact bytes that were hashed. A line with a field a CLI does not know is refused, by
name, with its line number (``remit.audit.lines``).

These types sit on the gateway's hot path, so they are ``msgspec`` structs: about four times
cheaper to build than dataclasses, serialised in one pass, and strictly validated when read
back (unknown fields are refused, so nothing can be added to a line unnoticed).
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

import msgspec

from remit.audit.arguments import ArgumentEvidence
from remit.policy.decision import Effect
from remit.times import utc_millis_at, utc_millis_text

GENESIS = "0" * 64
"""The ``prev`` of the first line of a chain."""

ChainStart = Literal["genesis", "resume", "recover", "override"]


def new_record_id(clock: Callable[[], int] = time.time_ns) -> str:
    """Return a 32-hex-digit id that sorts by creation time: 48 bits of ms, 80 random bits.

    ``clock`` gives nanoseconds since the epoch. The random bits only need to be unique, not
    secret; ``random`` reseeds after ``fork``.
    """
    return _id_at(clock())


def _id_at(nanoseconds: int) -> str:
    # One 128-bit integer printed once: the same 32 digits as two zero-padded fields, cheaper.
    return ((nanoseconds // 1_000_000) << 80 | random.getrandbits(80)).to_bytes(16, "big").hex()


def format_time(moment: datetime) -> str:
    """Format ``moment`` as RFC 3339 UTC with milliseconds, e.g. ``2026-01-02T03:04:05.678Z``."""
    if moment.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return utc_millis_text(moment)


def utc_now() -> datetime:
    """The current time in UTC (the default clock)."""
    return datetime.now(UTC)


def stamp(now: datetime | None = None, clock: Callable[[], datetime] = utc_now) -> tuple[str, str]:
    """A new record's ``(id, time)``: the time is ``now``, else ``clock()``.

    With the default clock both come from one ``time.time_ns()`` reading, without a
    ``datetime`` (two records per call; the text is what :func:`format_time` writes for it).
    """
    if now is None and clock is utc_now:
        nanoseconds = time.time_ns()
        return _id_at(nanoseconds), utc_millis_at(nanoseconds)
    return new_record_id(), format_time(now or clock())


def hash_session(session_id: str | None) -> str | None:
    """Return the sha256 hex of an ``Mcp-Session-Id``; the raw id is never recorded."""
    if not session_id:
        return None
    return hashlib.sha256(session_id.encode()).hexdigest()


class RecordedEvidence(
    msgspec.Struct, frozen=True, rename="camel", omit_defaults=True, forbid_unknown_fields=True
):
    """How the grant was captured on the consent page: the login and the request answered."""

    method: str
    issuer: str
    subject: str
    consented_at: str
    request: str
    scope: str


class RecordedGrant(
    msgspec.Struct, frozen=True, rename="camel", omit_defaults=True, forbid_unknown_fields=True
):
    """The ConsentGrant a decision relied on, exactly as the bundle named it. ``granted_by``
    and ``evidence`` are omitted when absent (and from lines written before they existed)."""

    name: str
    uid: str
    resource_version: str
    expires_at: str
    granted_by: str | None = None
    evidence: RecordedEvidence | None = None


class _Record(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    rename="camel",
    omit_defaults=True,
    forbid_unknown_fields=True,
    tag_field="type",
):
    """Fields every line has. ``prev`` and ``hash`` are empty until the record is sealed."""

    id: str
    time: str
    server: str
    pod: str
    prev: str = ""
    hash: str = ""


class DecisionRecord(_Record, frozen=True, kw_only=True, tag="decision"):
    """One decision, written before the request is forwarded (or instead of it, on deny).

    ``server`` is ``namespace/name``; ``tool`` the tool name, resource URI or prompt name;
    ``tool_hash`` the sha256 of the tool's definition when known; ``chain`` the earlier actors
    of a nested ``act`` claim; ``session`` the sha256 of the session id; ``rules`` the matched
    rule ids; ``bundle`` and ``serial`` the policy bundle in force. ``count`` is how many
    identical refusals the record stands for (more than 1 only for the summary of refusals
    aggregated per source and interval, see ``remit.gateway.refusals``) and ``source`` the
    client address, recorded for refusals of callers who are not authenticated. Both are
    omitted from the line at their defaults (1, none).
    """

    method: str
    tool: str
    tool_hash: str | None
    subject: str
    issuer: str
    agent: str
    chain: tuple[str, ...]
    session: str | None
    scopes: tuple[str, ...]
    decision: Effect
    reason: str
    message: str
    rules: tuple[str, ...]
    grant: RecordedGrant | None
    bundle: str
    serial: int | None
    arguments: ArgumentEvidence | None
    count: int = 1
    source: str | None = None


class OutcomeRecord(_Record, frozen=True, kw_only=True, tag="outcome"):
    """How a forwarded (or refused) request ended; completes the decision ``decision_id``.

    ``outcome`` is ``ok``, ``error`` (the server answered a JSON-RPC error), ``upstream_error``
    (the server could not be reached or failed), ``cancelled``, ``closed``, ``shutdown`` (a
    stopping gateway cut the call off: ``remit.gateway.drain``), or ``denied``. ``status`` is the
    HTTP status returned to the caller, ``latency_ms`` the time from decision to outcome.
    """

    decision_id: str
    outcome: str
    status: int | None
    latency_ms: float
    error: str | None


class ChainRecord(_Record, frozen=True, kw_only=True, tag="chain"):
    """A segment marker: a gateway process began (or resumed) writing this chain.

    ``start`` is ``genesis`` (new chain, ``prev`` is 64 zeros), ``resume`` (continues an
    existing file; ``prev`` is its last hash), ``recover`` (a new chain after a failed write,
    whose fate is unknown) or ``override`` (a new chain after a damaged file tail, started only
    because the operator allowed it). ``message`` says why, for the last two.

    A ``recover`` marker also names its gap: ``after`` is the hash of the last record written
    before the failure (the line just before the marker, which ``remit audit verify`` checks)
    and ``lost`` how many records were not written between them. Both are absent in markers
    written before they existed.

    ``not_forwarded`` lists the ids of allow decisions whose calls were then *not* forwarded
    because the sink did not confirm their records in time (the gateway failed closed): such a
    record may still have reached the log after the stall, so the marker is its outcome. A
    marker is written for these even when no record was lost (``lost`` 0).
    On a ``genesis`` marker, ``after`` is the head of the same pod's previous chain as last
    anchored by the operator (a restarted sidecar).
    """

    start: ChainStart
    message: str
    after: str | None = None
    lost: int | None = None
    not_forwarded: tuple[str, ...] = ()


CONSENT_ANSWERS = ("approved", "refused", "revoked", "failed", "duplicate")
"""What a ``consent`` record's ``answer`` can be (``ConsentRecord``)."""


class ConsentRecord(_Record, frozen=True, kw_only=True, tag="consent"):
    """A human's answer on the consent page to the consent request ``request`` (the id of the
    decision that denied the call with ``consent_required``).

    ``answer`` is one of ``CONSENT_ANSWERS``: ``approved``, ``refused`` or ``revoked``; or,
    after an ``approved`` record that made no grant (``consent/approval.py``), ``failed`` (the
    approval could not be synced, or its grant could not be written) or ``duplicate`` (a grant
    of that name existed already: another answer's), whose ``cancels`` is that approval's
    record id. ``login_issuer`` and ``login_subject`` come from the verified ID token;
    ``subject`` and ``agent`` are the request's; ``grant`` the ConsentGrant created, revoked
    or not written, with its ``scope`` and expiry.
    """

    request: str
    answer: str
    subject: str
    agent: str
    tool: str
    login_issuer: str
    login_subject: str
    scope: str | None = None
    grant: str | None = None
    expires_at: str | None = None
    cancels: str | None = None


AuditRecord = DecisionRecord | OutcomeRecord | ChainRecord | ConsentRecord
"""Any line of a decision log."""
