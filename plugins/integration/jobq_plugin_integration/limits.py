"""Vendor rate limits, shared by every worker through the queue's flow control.

* Every job of one platform and credential carries the same limit key
  (``integrations:<platform>:<credential digest>``): when the vendor answers 429, the job raises
  :class:`jobq.RateLimited` with that key and the queue holds all of that credential's jobs, on
  every worker, until the vendor's ``Retry-After`` / ``X-RateLimit-Reset`` has passed.
* :func:`pace` spaces calls to one target (a Slack channel: one message a second by default)
  across all workers with a slot counter in Redis.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from jobq import RateLimited, Settings

from .lock import _client

MAX_PACE_WAIT = 5.0  # wait in the handler up to this long for a slot; beyond, give the worker slot back

# KEYS[1] the target's next free slot (ms); ARGV[1] interval ms, ARGV[2] most ms to wait.
# Returns the ms to wait before sending (the slot is taken), or -ms to defer the job (nothing taken).
_PACE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
local wait = slot - now
if wait > tonumber(ARGV[2]) then return -(wait - tonumber(ARGV[2])) end
local nxt = slot + tonumber(ARGV[1])
redis.call('SET', KEYS[1], nxt, 'PX', nxt - now + 1000)
return wait
"""


def credential_digest(credentials: Any) -> str:
    """16 hex of SHA-256 over the credentials' canonical JSON: names the credential, reveals nothing."""
    raw = json.dumps(credentials, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def limit_key(platform: str, credentials: Any) -> str:
    return f"integrations:{platform}:{credential_digest(credentials)}"


def job_limit_key(data: Any) -> str | None:
    """``QueueSpec.limit_key`` of the integrations queue: derived at enqueue from the raw payload."""
    if not isinstance(data, dict) or not isinstance(data.get("platform"), str):
        return None
    return limit_key(data["platform"][:64], data.get("credentials"))


async def pace(settings: Settings, target: str, interval: float, *, max_wait: float = MAX_PACE_WAIT) -> None:
    """Take the next send slot of ``target`` (``interval`` seconds after the previous one, across all
    workers) and wait for it; a slot further than ``max_wait`` away defers the job instead."""
    if interval <= 0:
        return
    key = f"{settings.prefix}:integrations:pace:{hashlib.sha256(target.encode()).hexdigest()[:24]}"
    wait = await _client(settings).eval(_PACE, 1, key, int(interval * 1000), int(max_wait * 1000))
    if wait < 0:
        raise RateLimited(-wait / 1000, reason=f"pacing {interval:g}s between messages to one target")
    if wait:
        await asyncio.sleep(wait / 1000)
