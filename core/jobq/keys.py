"""Every Redis key name. All keys of one queue share the hash tag ``{queue}``, so a queue lives
in one Redis Cluster slot and its Lua scripts stay single-slot."""

from __future__ import annotations

import re
from typing import Any

import attrs

JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


@attrs.frozen
class QueueKeys:
    prefix: str
    queue: str

    @property
    def base(self) -> str:
        return f"{self.prefix}:{{{self.queue}}}:"

    def job(self, job_id: str) -> str:
        return f"{self.base}job:{job_id}"

    def inbox(self, worker_id: str) -> str:
        """LIST the worker blocks on while idle: claim records of jobs handed to it by enqueue."""
        return f"{self.base}inbox:{worker_id}"

    def hist(self, minute: int) -> str:
        """HASH of one minute's history (written by the Lua scripts' ``record_history``)."""
        return f"{self.base}hist:{minute}"

    @property
    def job_prefix(self) -> str:
        return self.base + "job:"

    def group(self, group: str, what: str) -> str:
        """A group's own keys: ``wait`` LIST, ``prio`` ZSET, ``starts`` ZSET (see lib.lua)."""
        return f"{self.base}g:{group}:{what}"

    def fetch_keys(self) -> list[str]:
        """KEYS of fetch.lua before the per-ack job keys."""
        return [self.base + n for n in ("wait", "prio", "delayed", "active", "completed", "failed", "meta",
                                        "events", "stats", "gc", "seq")]

    def reap_keys(self) -> list[str]:
        """KEYS of reap.lua."""
        return [self.base + n for n in ("reaper", "active", "wait", "prio", "failed", "events", "stats", "marker",
                                        "seq")]


def queues_key(prefix: str) -> str:
    """The set of every queue a worker has announced (global, read outside scripts)."""
    return f"{prefix}:queues"


def worker_key(prefix: str, worker_id: str) -> str:
    return f"{prefix}:worker:{worker_id}"


def workers_key(prefix: str) -> str:
    """ZSET worker id -> last heartbeat (ms)."""
    return f"{prefix}:workers"


# One property per per-queue key: QueueKeys("jobq", "mail").wait == "jobq:{mail}:wait".
QUEUE_KEYS = (
    "wait",       # LIST of ready ids without priority: LPUSH in, RPOP out (FIFO)
    "prio",       # ZSET of ready ids with a priority: score -priority*1e12 + seq
    "delayed",    # ZSET id -> run-at ms (delays and retry backoff)
    "active",     # ZSET id -> lease deadline ms
    "completed",  # ZSET id -> finished-at ms
    "failed",     # ZSET id -> finished-at ms (the dead-letter view)
    "meta",       # HASH paused flag, spec
    "marker",     # LIST wake-up hints for blocked workers
    "events",     # STREAM lifecycle events, capped
    "reaper",     # STRING throttle of the stalled-job sweep
    "stats",      # HASH counters
    "gc",         # LIST claim-check blobs to delete from storage
    "seq",        # STRING counter ordering equal priorities (and hand-off tokens)
    "idle",       # ZSET "<lease ms>|<worker id>" -> until when that worker takes jobs handed to it
    # flow control (lib.lua): groups, rate limits, held limit keys
    "ring",       # ZSET groups a claim may serve now, round-robin order (score from rseq)
    "rseq",       # STRING counter ordering the ring
    "gactive",    # HASH group -> active jobs (group_concurrency)
    "gpaused",    # SET paused groups
    "gwake",      # ZSET group -> ms its rate window opens again
    "gready",     # STRING ready jobs in group lists (counted in "waiting")
    "starts",     # ZSET sliding log of claim times (queue rate limit)
    "limits",     # ZSET limit key -> ms until which its jobs are held (RateLimited)
    "limitn",     # HASH limit key -> jobs held so far (spreads their release)
    "schedules",  # HASH def:<name> JSON, last:<name> tick ms, paused:<name>, declared:<name> (by a spec)
    "ticking",    # STRING the worker ticking this queue's due schedules now (SET NX PX; saves work only)
    "blocked",    # ZSET ids waiting for dependencies -> when to reconcile them next (ms)
    "resolve",    # LIST outbox: dependents of finished jobs, to resolve in their own slot (JSON)
)
for _name in QUEUE_KEYS:
    setattr(QueueKeys, _name, property(lambda self, _n=_name: self.base + _n))


def delete_prefix(client: Any, prefix: str) -> None:
    """Delete every key of one jobq installation (tests, benchmarks, demos): SCAN, never KEYS."""
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.delete(key)
