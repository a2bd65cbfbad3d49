"""One sync at a time per report and platform, across every worker process (a Redis lease).

Two jobs for the same report running at once would both find no recorded issue and both create
one. The second waits instead: it is rescheduled with :class:`jobq.Retry`, spending no attempt,
and on its next start finds the first one's issue recorded and updates it.

The lease outlives the queue timeout, so a crashed worker's lock expires on its own; and the job
that held it may take it back at once when it is retried (the lock names its job), so a crash does
not make the job's own retry wait for the lease. A waiter is deferred long enough in total
(``max_deferrals`` times :data:`WAIT_SECONDS`) to outlast any lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import weakref
from collections.abc import AsyncIterator
from typing import Any

from jobq import Retry, Settings
from jobq.queue import make_client

LEASE_SECONDS = 180.0  # above the queue's 120 s timeout
WAIT_SECONDS = 8.0  # x 25 deferrals = 200 s > the lease
# KEYS[1] lock; ARGV[1] "<job id>:<attempt token>", ARGV[2] "<job id>:", ARGV[3] lease ms
_ACQUIRE = """
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, string.len(ARGV[2])) ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[str, Any]] = weakref.WeakKeyDictionary()


def _client(settings: Settings) -> Any:
    loop = asyncio.get_running_loop()
    entry = _clients.get(loop)
    if entry is None or entry[0] != settings.redis_url:
        entry = _clients[loop] = (settings.redis_url, make_client(settings, asyncio=True))
    return entry[1]


def lock_key(prefix: str, platform: str, marker: str) -> str:
    return f"{prefix}:integrations:lock:{platform}:{marker}"


@contextlib.asynccontextmanager
async def report_lock(settings: Settings, platform: str, marker: str, *, owner: str,
                      lease: float = LEASE_SECONDS) -> AsyncIterator[None]:
    """Hold the report's lock for the block, or raise ``Retry`` when another job holds it.

    :param owner: the job id; an attempt of the same job may take over its own earlier lock.
    """
    client = _client(settings)
    key = lock_key(settings.prefix, platform, marker)
    value = f"{owner}:{secrets.token_hex(8)}"
    if not await client.eval(_ACQUIRE, 1, key, value, f"{owner}:", int(lease * 1000)):
        raise Retry(WAIT_SECONDS, f"another job is syncing this report to {platform}; waiting for it")
    try:
        yield
    finally:
        await client.eval(_RELEASE, 1, key, value)
