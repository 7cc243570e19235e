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
