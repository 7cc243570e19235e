"""Gateway logging never blocks its caller, even when nobody reads stderr."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator

import pytest

from remit.gateway.logs import QUEUE_RECORDS, log_to_stderr


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_logging_to_a_stderr_nobody_reads_drops_and_counts_instead_of_blocking(
    restore_root_logger: None,
) -> None:
    read_end, write_end = os.pipe()
    stream = os.fdopen(write_end, "w", buffering=1)
    writer = log_to_stderr("WARNING", "%(levelname)s %(message)s", stream)
    log = logging.getLogger("remit.test")
    lines = QUEUE_RECORDS * 3  # ~100 bytes each: far beyond the pipe and the queue

    def flood() -> None:
        for n in range(lines):
            log.error("decision record not written: %d %s", n, "x" * 60)

    flooding = threading.Thread(target=flood, daemon=True)
    flooding.start()
    flooding.join(60)
    assert not flooding.is_alive(), "logging blocked on a stderr nobody reads"

    received = bytearray()

    def drain() -> None:  # the reader comes back
        while chunk := os.read(read_end, 1 << 16):
            received.extend(chunk)

    draining = threading.Thread(target=drain, daemon=True)
    draining.start()
    writer.stop(timeout=30)
    assert not writer.thread.is_alive()
    stream.close()
    draining.join(30)
    text = received.decode()
    assert "log lines dropped: stderr was not being read" in text
    dropped = sum(int(line.split()[1]) for line in text.splitlines() if "log lines dropped" in line)
    written = text.count("decision record not written")
    assert dropped > 0
    assert dropped + written == lines  # every line is either written or counted
    os.close(read_end)
