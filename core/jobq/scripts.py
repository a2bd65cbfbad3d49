"""The Lua scripts, loaded once per client (EVALSHA, reloaded after a Redis restart)."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

NAMES = ("enqueue", "fetch", "fail", "heartbeat", "progress", "release", "reap", "retry", "remove", "purge", "idle",
         "cancel", "block", "register", "resolve", "schedule", "tick", "promote", "group")
COMPOSED = {"tick": ("tick", "enqueue")}  # a schedule tick is a guard, then the enqueue itself


@cache
def source(name: str) -> str:
    lua = files("jobq") / "lua"
    parts = COMPOSED.get(name, (name,))
    return "\n".join([(lua / "lib.lua").read_text(), *((lua / f"{p}.lua").read_text() for p in parts)])


class Scripts:
    """``scripts.fetch(keys=..., args=...)`` for a sync or an asyncio redis client."""

    def __init__(self, client: object) -> None:
        for name in NAMES:
            setattr(self, name, client.register_script(source(name)))  # type: ignore[attr-defined]
