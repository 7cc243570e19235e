"""The gateway's log output on stderr, written so that it can never block the event loop.

Why: a container runtime (or any log collector) that stops reading a container's output stalls
stderr as well as stdout. The audit sink no longer blocks on stdout, but a log call on the
event loop writing to a full stderr pipe froze the gateway the same way, and the gateway logs
every record it could not write. Here a log record goes into a bounded queue (formatting is
the caller's only cost); one thread writes the queue to stderr. When the queue is full the
record is dropped and counted, and the next line that reaches stderr says how many were
dropped. Log lines are diagnostics; decision records never take this path.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
import threading
from typing import TextIO

QUEUE_RECORDS = 10_000


class _Enqueue(logging.handlers.QueueHandler):
    """Puts records into the queue without waiting; counts the ones that do not fit."""

    def __init__(self, records: queue.Queue[logging.LogRecord | None]) -> None:
        super().__init__(records)
        self.dropped = 0

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1  # read by the writer thread; an int update is atomic enough


class _Writer:
    """The thread that writes queued records to ``stream`` (it may block; the loop does not)."""

    def __init__(self, source: _Enqueue, stream: TextIO, formatter: logging.Formatter) -> None:
        self.source = source
        self.records: queue.Queue[logging.LogRecord | None] = source.queue  # type: ignore[assignment]
        self.handler = logging.StreamHandler(stream)
        self.handler.setFormatter(formatter)
        self.reported = 0
        self.thread = threading.Thread(target=self._run, name="stderr log", daemon=True)

    def _run(self) -> None:
        while (record := self.records.get()) is not None:
            dropped = self.source.dropped
            if dropped != self.reported:
                note = logging.makeLogRecord(
                    {
                        "name": __name__,
                        "levelno": logging.WARNING,
                        "levelname": "WARNING",
                        "msg": f"{dropped - self.reported} log lines dropped: stderr was not "
                        "being read",
                    }
                )
                self.handler.handle(note)
                self.reported = dropped
            self.handler.handle(record)

    def stop(self, timeout: float = 1.0) -> None:
        """Write what is queued, waiting at most ``timeout`` (stderr may be stalled)."""
        try:
            self.records.put(None, timeout=timeout)
        except queue.Full:
            return
        self.thread.join(timeout)


def log_to_stderr(level: str, fmt: str, stream: TextIO | None = None) -> _Writer:
    """Send every log record to ``stream`` (stderr) through a bounded queue and a thread.

    Replaces the root logger's handlers; other loggers should propagate to the root.
    """
    records: queue.Queue[logging.LogRecord | None] = queue.Queue(QUEUE_RECORDS)
    source = _Enqueue(records)
    writer = _Writer(source, stream or sys.stderr, logging.Formatter(fmt))
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    root.addHandler(source)
    root.setLevel(level.upper())
    writer.thread.start()
    atexit.register(writer.stop)
    return writer
