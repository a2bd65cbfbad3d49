"""The RQ job function (RQ imports it by dotted path in the worker)."""

from __future__ import annotations

import time

from clock import record


def noop(t: float | None = None) -> None:
    started = time.monotonic()
    if t is not None:
        record(t, started)
