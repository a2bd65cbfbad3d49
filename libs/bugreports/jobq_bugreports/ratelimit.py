"""Per-project request limits of the intake API, shared by every API process through Redis.

A sliding log (a ZSET of request times per project, trimmed to the window) admits at most
``requests`` in any rolling ``perSeconds``: unlike a fixed window it never lets twice the limit
through around a boundary. One Lua call per request; time comes from Redis, so API processes on
different hosts agree.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import attrs
import redis

log = logging.getLogger(__name__)

_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max, win = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - win)
local n, admitted = redis.call('ZCARD', KEYS[1]), 0
if n < max then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], win)
  n, admitted = n + 1, 1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {admitted, max - n, tonumber(oldest[2]) + win - now}
"""


@attrs.frozen
class RateLimit:
    """``rateLimit: {requests, perSeconds}`` of one project."""

    requests: int
    per_seconds: float


@attrs.frozen
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset: float  # seconds until the oldest counted request leaves the window

    def headers(self) -> dict[str, str]:
        """``RateLimit-*`` headers (IETF draft), and ``Retry-After`` on a refusal."""
        reset = str(max(1, math.ceil(self.reset)))
        out = {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining), "RateLimit-Reset": reset}
        if not self.allowed:
            out["Retry-After"] = reset
        return out


class RequestLimiter:
    """Admits or refuses one request of a project against its :class:`RateLimit`.

    :param client: a blocking redis client (the intake's manager's).
    :param prefix: jobq's key prefix; keys are ``<prefix>:{api:<project>}:requests``.
    """

    def __init__(self, client: Any, prefix: str) -> None:
        self.prefix = prefix
        self._admit = client.register_script(_ADMIT)

    def check(self, project_id: str, limit: RateLimit) -> Verdict | None:
        """The verdict, or ``None`` when Redis cannot answer (then the request goes on: creating the
        report needs Redis too and answers 503 on its own)."""
        key = f"{self.prefix}:{{api:{project_id}}}:requests"
        window_ms = max(1, round(limit.per_seconds * 1000))
        try:
            ok, remaining, reset_ms = self._admit(keys=[key], args=[limit.requests, window_ms, os.urandom(8).hex()])
        except redis.RedisError as exc:
            log.warning("request limit of project %s not checked: %s", project_id, type(exc).__name__)
            return None
        return Verdict(bool(ok), limit.requests, int(remaining), int(reset_ms) / 1000)
