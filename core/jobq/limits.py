"""A rolling-window limit shared through Redis, for code outside the claim path (an API's request
limits, a plugin's per-host sends). The queue's own rate limit lives in the claim script.

A sliding log (a ZSET of admission times, trimmed to the window) admits at most ``max_events`` in
any rolling ``per_seconds``: a fixed window or a token bucket lets up to twice the limit through
around a boundary. One Lua call per check; time comes from Redis, so every process agrees.
"""

from __future__ import annotations

import math
import os
from typing import Any

import attrs


def parse_rate(raw: str, max_seconds: float = 604800) -> tuple[int, float] | None:
    """``"100/60"`` -> ``(100, 60.0)``: at most 100 in any 60 s; ``None`` when it is not that shape."""
    mx, _, per = raw.strip().partition("/")
    try:
        value = (int(mx), float(per))
    except ValueError:
        return None
    return value if value[0] >= 1 and 0.001 <= value[1] <= max_seconds else None


# KEYS[1] the log; ARGV: 1 max, 2 window ms, 3 a unique member
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
class Admission:
    """One check's verdict.

    :param allowed: the event was admitted (and counted).
    :param limit: ``max_events``.
    :param remaining: events still admitted in the current window.
    :param reset: seconds until the oldest counted event leaves the window (room for one more).
    """

    allowed: bool
    limit: int
    remaining: int
    reset: float

    def headers(self) -> dict[str, str]:
        """``RateLimit-Limit/Remaining/Reset`` (IETF draft), plus ``Retry-After`` on a refusal."""
        reset = str(max(1, math.ceil(self.reset)))
        out = {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
               "RateLimit-Reset": reset}
        if not self.allowed:
            out["Retry-After"] = reset
        return out


def _args(max_events: int, per_seconds: float) -> list[Any]:
    return [int(max_events), max(1, round(per_seconds * 1000)), os.urandom(8).hex()]


def _admission(reply: Any, max_events: int) -> Admission:
    ok, remaining, reset_ms = reply
    return Admission(bool(ok), int(max_events), int(remaining), int(reset_ms) / 1000)


def admit(client: Any, key: str, max_events: int, per_seconds: float) -> Admission:
    """Count one event under ``key`` if the window has room (a blocking redis client)."""
    return _admission(client.register_script(_ADMIT)(keys=[key], args=_args(max_events, per_seconds)), max_events)


async def admit_async(client: Any, key: str, max_events: int, per_seconds: float) -> Admission:
    """:func:`admit` for an asyncio redis client."""
    script = client.register_script(_ADMIT)
    return _admission(await script(keys=[key], args=_args(max_events, per_seconds)), max_events)
