"""The Lua scripts, loaded once per client (EVALSHA, reloaded after a Redis restart)."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

NAMES = ("enqueue", "fetch", "fail", "heartbeat", "progress", "release", "reap", "retry", "remove", "purge", "idle",
         "group")


@cache
def source(name: str) -> str:
    lua = files("jobq") / "lua"
    return (lua / "lib.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


class Scripts:
    """``scripts.fetch(keys=..., args=...)`` for a sync or an asyncio redis client."""

    def __init__(self, client: object) -> None:
        for name in NAMES:
            setattr(self, name, client.register_script(source(name)))  # type: ignore[attr-defined]
