"""Webhooks limited per destination host, across every worker.

Each send to a host first passes a rolling window shared through Redis
(``NOTIFICATION_WEBHOOK_HOST_RATE=max/seconds``, default 10 per second): a burst of reports cannot
hammer one receiver. A refused or 429-answered send leaves the recipient pending, and the job raises
:class:`jobq.RateLimited`; when all of a job's webhooks go to one host it carries that host's limit
key (set at enqueue), so every job for the host waits together.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import weakref
from typing import Any

import httpx
import redis
from jobq import Settings
from jobq.limits import Admission, admit_async, parse_rate
from jobq.queue import make_client

from .config import ConfigInvalid

log = logging.getLogger(__name__)

HOST_RATE = "NOTIFICATION_WEBHOOK_HOST_RATE"
DEFAULT_HOST_RATE = (10, 1.0)

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[str, Any]] = weakref.WeakKeyDictionary()


def host_rate(env: Any = None) -> tuple[int, float] | None:
    """``max/seconds`` from ``NOTIFICATION_WEBHOOK_HOST_RATE``; ``0`` or ``off`` disables the limit."""
    raw = ((os.environ if env is None else env).get(HOST_RATE) or "").strip()
    if not raw:
        return DEFAULT_HOST_RATE
    if raw in ("0", "off"):
        return None
    value = parse_rate(raw, max_seconds=86400)
    if value is None:
        raise ConfigInvalid(f"{HOST_RATE}={raw!r} must be max/seconds, e.g. 10/1 (or off)")
    return value


def host_of(url: str) -> str:
    """The destination host (with a non-default port), lowercased: what the limit counts."""
    u = httpx.URL(url)
    return f"{u.host}:{u.port}" if u.port else u.host


def job_limit_key(data: Any) -> str | None:
    """``QueueSpec.limit_key`` of the notifications queue: the host when all webhooks go to one."""
    if not isinstance(data, dict) or data.get("type") != "webhook" or not isinstance(data.get("recipients"), list):
        return None
    hosts = set()
    for r in data["recipients"]:
        url = r.get("url") if isinstance(r, dict) else r
        try:
            hosts.add(host_of(url))
        except Exception:  # a bad URL is refused by the payload class, not here
            return None
    return f"notifications:webhook:{hosts.pop()}"[:200] if len(hosts) == 1 else None


async def admit_host(settings: Settings | None, url: str, rate: tuple[int, float]) -> Admission | None:
    """Count one send to ``url``'s host; ``None`` when Redis cannot answer (the send goes ahead)."""
    settings = settings or Settings.from_env()
    loop = asyncio.get_running_loop()
    entry = _clients.get(loop)
    if entry is None or entry[0] != settings.redis_url:
        entry = _clients[loop] = (settings.redis_url, make_client(settings, asyncio=True))
    digest = hashlib.sha256(host_of(url).encode()).hexdigest()[:24]
    try:
        return await admit_async(entry[1], f"{settings.prefix}:notifications:host:{digest}", *rate)
    except redis.RedisError as exc:
        log.warning("webhook host limit not checked: %s", type(exc).__name__)
        return None
