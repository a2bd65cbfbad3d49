"""``job.redis`` for async handlers: one client per worker that pipelines concurrent commands.

A hundred handlers each awaiting one ``INCR`` would otherwise take a hundred pool connections
and a hundred write/read turns. Here every command issued during one turn of the event loop
is queued, and the batch goes out as one non-transactional pipeline (one write, one read of
all replies), as ioredis' ``enableAutoPipelining`` does. Each caller still gets its own reply
or its own error; blocking and connection-state commands bypass the batch.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio

from .config import Settings

#: commands that block, hold a connection's state, or must not share a round trip with others
DIRECT = frozenset({
    "BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP", "XREAD",
    "XREADGROUP", "WAIT", "WAITAOF", "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR", "SELECT",
    "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "CLIENT", "AUTH", "HELLO", "RESET", "QUIT",
})


class AutoPipelineRedis(redis.asyncio.Redis):
    """A ``redis.asyncio.Redis`` whose commands are batched per event-loop turn into pipelines.

    Every command method (``incr``, ``hset``, ``evalsha``, scripts, ...) goes through
    :meth:`execute_command`, so the whole redis-py API is available unchanged; ``pipeline()``
    and ``pubsub()`` work as usual on their own connections.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batch: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]] = []
        self._flushes: set[asyncio.Task[None]] = set()

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        name = args[0]
        name = (name.decode() if isinstance(name, bytes) else str(name)).split(" ", 1)[0].upper()
        if name in DIRECT:
            return await super().execute_command(*args, **options)
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        if not self._batch:
            loop.call_soon(self._flush)
        self._batch.append((args, options, fut))
        return await fut

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._flushes.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(self._flushes.discard)

    async def _send(self, batch: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]]) -> None:
        try:
            if len(batch) == 1:
                args, options, _fut = batch[0]
                replies = [await super().execute_command(*args, **options)]
            else:
                pipe = self.pipeline(transaction=False)
                for args, options, _fut in batch:
                    pipe.execute_command(*args, **options)
                replies = await pipe.execute(raise_on_error=False)
        except asyncio.CancelledError:
            for _a, _o, fut in batch:
                fut.cancel()
            raise
        except Exception as exc:  # the connection failed: every command of the batch gets the error
            for _a, _o, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_a, _o, fut), reply in zip(batch, replies, strict=True):
            if fut.done():  # its caller was cancelled meanwhile
                continue
            if isinstance(reply, Exception):
                fut.set_exception(reply)
            else:
                fut.set_result(reply)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)
        await super().aclose(close_connection_pool)


def handler_client(settings: Settings) -> Any:
    """The client behind ``job.redis`` in async handlers: auto-pipelining on plain and Sentinel
    URLs; on Redis Cluster, redis-py's cluster client as it is (it routes each key to its node)."""
    from .queue import make_client

    base = make_client(settings, asyncio=True)
    if not isinstance(base, redis.asyncio.Redis):
        return base
    return AutoPipelineRedis.from_pool(base.connection_pool)
