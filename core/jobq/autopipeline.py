"""``job.redis`` for async handlers: one client per worker that pipelines concurrent commands.

A hundred handlers each awaiting one ``INCR`` would otherwise take a hundred pool connections
and a hundred write/read turns. Here every command issued during one turn of the event loop
is queued, and the batch goes out as one non-transactional pipeline (one write, one read of
all replies), as ioredis' ``enableAutoPipelining`` does. Each caller still gets its own reply
or its own error; blocking and connection-state commands bypass the batch.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import redis.asyncio

try:  # hiredis (a jobq dependency) packs commands in C; redis-py's asyncio client packs in Python
    from hiredis import pack_command as _pack
except ImportError:  # pragma: no cover
    _pack = None

from .config import Settings

#: commands that block, hold a connection's state, or must not share a round trip with others
DIRECT = frozenset({
    "BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP", "XREAD",
    "XREADGROUP", "WAIT", "WAITAOF", "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR", "SELECT",
    "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "CLIENT", "AUTH", "HELLO", "RESET", "QUIT",
})

_PACKABLE = (str, bytes, int, float)  # exact types: bool is refused by redis-py and must stay so
_POOL_TAKES_NO_NAME = inspect.signature(redis.asyncio.ConnectionPool.get_connection).parameters[
    "command_name"].default is None


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
                args, options, fut = batch[0]
                try:
                    reply = await super().execute_command(*args, **options)
                except Exception as exc:
                    reply = exc
                replies = [reply]
            else:
                replies = await self._pipeline(batch)
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

    async def _pipeline(self, batch: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]]) -> list[Any]:
        """Send the batch in one write and read every reply, each parsed as ``execute_command`` would.

        Commands are packed by hiredis' C encoder where their arguments allow (str, bytes, int,
        float), else by redis-py's; a reply that is an error is returned for its own caller only.
        """
        pool = self.connection_pool
        conn = await (pool.get_connection() if _POOL_TAKES_NO_NAME else pool.get_connection("PIPELINE"))
        try:
            chunks: list[bytes] = []
            replies: list[Any] = [None] * len(batch)
            sent: list[int] = []
            for i, (args, _o, _f) in enumerate(batch):
                name = args[0]
                if (_pack is not None and all(type(x) in _PACKABLE for x in args)
                        and (" " not in name if isinstance(name, str) else b" " not in name)):  # "SCRIPT LOAD"
                    chunks.append(_pack(args))
                else:
                    try:
                        chunks.extend(conn.pack_command(*args))
                    except redis.DataError as exc:  # an argument redis-py refuses: this caller's error only
                        replies[i] = exc
                        continue
                sent.append(i)
            await conn.send_packed_command(b"".join(chunks), check_health=True)
            for i in sent:
                args, options, _f = batch[i]
                try:
                    replies[i] = await self.parse_response(conn, args[0], **options)
                except redis.ResponseError as exc:  # this command's error; the stream stays in step
                    replies[i] = exc
            return replies
        except BaseException:
            await conn.disconnect()  # a half-read stream is never handed back to the pool
            raise
        finally:
            await pool.release(conn)

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
