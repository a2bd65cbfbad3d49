"""Handler-side half of the latency probe, shared by the Python workers.

A latency job carries ``t``, the producer's ``time.monotonic()`` read just before its enqueue call.
CLOCK_MONOTONIC is one system-wide clock on Linux, so the worker process can subtract it from its own
reading. Each sample is appended to a file (one short ``O_APPEND`` write), which also works for workers
that fork a child per job.
"""

from __future__ import annotations

import os
import time

LAT_FILE = os.environ.get("BENCH_LAT_FILE", "")


def record(sent: float, started: float | None = None) -> None:
    """Append ``started - sent`` in seconds; ``started`` defaults to now."""
    if started is None:
        started = time.monotonic()
    with open(LAT_FILE, "a") as f:
        f.write(f"{started - sent:.9f}\n")
