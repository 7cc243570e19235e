"""A sink's condition, as ``/readyz``, ``/v1/status`` and the metrics report it.

Its own module so that readers of health (the gateway's admin API and metrics) need not import
the writer machinery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SinkState = Literal["ok", "stalled", "failing", "closed"]
"""``ok``; ``stalled`` (a write has not completed within the timeout); ``failing`` (the last
write failed); ``closed``."""


@dataclass(frozen=True, slots=True)
class SinkHealth:
    """A sink's condition: ``state`` and why (``reason``), lines waiting and lines lost."""

    state: SinkState
    reason: str
    queued: int
    lost: int
    failures: int

    @property
    def ok(self) -> bool:
        """Whether the sink is writing normally."""
        return self.state == "ok"
