"""The one way Remit writes a moment as text: RFC 3339 in UTC with a ``Z`` suffix.

Decision records, bundle documents, status fields, the admin API and error messages all show
times; they must agree on the form so a human (or ``jq``) can compare them. ``precision`` is
``datetime.isoformat``'s ``timespec``: records use milliseconds, status fields seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_text(moment: datetime, precision: str = "auto") -> str:
    """``moment`` as RFC 3339 UTC text, e.g. ``2026-01-02T03:04:05Z``.

    An aware time is converted to UTC; a naive one is taken to be UTC already.
    """
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec=precision).removesuffix("+00:00") + "Z"


#: The last whole second :func:`utc_millis_text` wrote (its fields, seconds first) and its text.
_second: tuple[tuple[int, ...], str] = ((), "")
#: ``.000Z`` to ``.999Z``: the end of a record time, by millisecond.
_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))


def utc_millis_text(moment: datetime) -> str:
    """``utc_text(moment, "milliseconds")``, cheaper for the moments a gateway writes per call.

    Every decision record carries its time, so the text of the current second is kept and only
    the milliseconds are added per record (same bytes as :func:`utc_text`).
    """
    global _second  # noqa: PLW0603 - one immutable pair, replaced whole (thread-safe)
    if moment.tzinfo is not UTC:
        return utc_text(moment, "milliseconds")
    key = (moment.second, moment.minute, moment.hour, moment.day, moment.month, moment.year)
    cached = _second
    if cached[0] != key:
        text = moment.replace(microsecond=0).isoformat().removesuffix("+00:00")
        cached = _second = (key, text)
    return cached[1] + _MILLIS[moment.microsecond // 1000]


#: The last whole second :func:`utc_millis_at` wrote (seconds since the epoch) and its text.
_epoch_second: tuple[int, str] = (-1, "")


def utc_millis_at(nanoseconds: int) -> str:
    """:func:`utc_millis_text` of the moment ``nanoseconds`` after the epoch (``time.time_ns``),
    without building a ``datetime``: the same text as ``utc_millis_text(datetime.now(UTC))``
    for the same reading of the clock (milliseconds truncated, as ``datetime.now`` truncates
    microseconds)."""
    global _epoch_second  # noqa: PLW0603 - one immutable pair, replaced whole (thread-safe)
    second, rest = divmod(nanoseconds, 1_000_000_000)
    cached = _epoch_second
    if cached[0] != second:
        text = datetime.fromtimestamp(second, UTC).isoformat().removesuffix("+00:00")
        cached = _epoch_second = (second, text)
    return cached[1] + _MILLIS[rest // 1_000_000]
