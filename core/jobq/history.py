"""Per-queue, per-minute history without Prometheus: completed, failed, retried and stalled counts and
a histogram of completed jobs' durations, written by the Lua scripts the worker already calls
(``record_history`` in ``lua/lib.lua``) into one hash per queue and minute, kept 25 hours.

Reading a window is one pipeline of ``HGETALL`` (after one ``TIME``), whatever the queue's size.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from .queue import AsyncQueueManager, Op, QueueManager, _Ops, _Pipe, _run_async, _run_sync

# Upper bounds (ms) of the duration buckets d1..d14; d15 holds anything slower. Same list as lib.lua.
BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000)
MAX_MINUTES = 24 * 60
_COUNTS = {"c": "completed", "f": "failed", "r": "retried", "s": "stalled"}


@attrs.frozen(kw_only=True)
class Minute:
    """One queue's activity during one minute (``minute`` counts minutes since the epoch, UTC)."""

    minute: int
    completed: int = 0
    failed: int = 0
    retried: int = 0
    stalled: int = 0
    duration_ms_sum: int = 0
    buckets: tuple[int, ...] = (0,) * (len(BUCKETS_MS) + 1)

    @property
    def timestamp(self) -> float:
        return self.minute * 60.0

    def to_dict(self) -> dict[str, Any]:
        return {"minute": self.minute, "timestamp": self.timestamp, "completed": self.completed,
                "failed": self.failed, "retried": self.retried, "stalled": self.stalled,
                "duration_ms_sum": self.duration_ms_sum, "buckets": list(self.buckets)}


def _minute(minute: int, raw: dict[bytes, bytes]) -> Minute:
    counts: dict[str, int] = {}
    buckets = [0] * (len(BUCKETS_MS) + 1)
    total = 0
    for k, v in raw.items():
        name, n = k.decode(), int(v)
        if name in _COUNTS:
            counts[_COUNTS[name]] = n
        elif name == "ds":
            total = n
        elif name[:1] == "d" and name[1:].isdigit() and 1 <= int(name[1:]) <= len(buckets):
            buckets[int(name[1:]) - 1] = n
    return Minute(minute=minute, duration_ms_sum=total, buckets=tuple(buckets), **counts)


def history_op(ops: _Ops, queues: Iterable[str], minutes: int = 60) -> Op[dict[str, list[Minute]]]:
    """The last ``minutes`` minutes (current one included, oldest first) of every queue in ``queues``."""
    queues = list(queues)
    minutes = max(1, min(int(minutes), MAX_MINUTES))
    now = yield ("TIME",)
    current = (int(now[0]) * 1000 + int(now[1]) // 1000) // 60000
    span = range(current - minutes + 1, current + 1)
    cmds = [("HGETALL", ops.keys(q).hist(m)) for q in queues for m in span]
    rows = (yield _Pipe(cmds)) if cmds else []
    out: dict[str, list[Minute]] = {}
    for i, q in enumerate(queues):
        out[q] = [_minute(m, rows[i * minutes + j]) for j, m in enumerate(span)]
    return out


def read_history(manager: QueueManager, queues: Iterable[str], minutes: int = 60) -> dict[str, list[Minute]]:
    """Blocking read of :func:`history_op`."""
    return _run_sync(manager.redis, manager.scripts, history_op(manager, queues, minutes))


async def read_history_async(manager: AsyncQueueManager, queues: Iterable[str],
                             minutes: int = 60) -> dict[str, list[Minute]]:
    return await _run_async(manager.redis, manager.scripts, history_op(manager, queues, minutes))


def percentile(buckets: Iterable[int], q: float) -> float | None:
    """Upper bound (ms) of the bucket holding quantile ``q``; ``inf`` past the last bound, ``None`` if empty."""
    counts = list(buckets)
    total = sum(counts)
    if not total:
        return None
    rank, seen = q * total, 0
    for i, n in enumerate(counts):
        seen += n
        if seen >= rank and n:
            return float(BUCKETS_MS[i]) if i < len(BUCKETS_MS) else float("inf")
    return float("inf")


def summarize(rows: Iterable[Minute]) -> dict[str, Any]:
    """Totals over a window, with duration p50/p95/p99 (bucket upper bounds) and the mean."""
    rows = list(rows)
    buckets = [sum(col) for col in zip(*(r.buckets for r in rows), strict=True)] if rows else []
    completed = sum(r.completed for r in rows)
    out: dict[str, Any] = {name: sum(getattr(r, name) for r in rows) for name in _COUNTS.values()}
    out["mean_ms"] = round(sum(r.duration_ms_sum for r in rows) / completed, 1) if completed else None
    for q in (50, 95, 99):
        out[f"p{q}_ms"] = percentile(buckets, q / 100)
    return out
