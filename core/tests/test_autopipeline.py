"""``job.redis``: the auto-pipelining client, alone and inside a worker."""

import asyncio
import socket
import uuid

import pytest
import redis
from jobq import QueueSpec
from jobq.autopipeline import AutoPipelineRedis, handler_client
from jobq.testing import redis_test_url


@pytest.fixture
def key(rclient):
    k = f"jobqt-ap-{uuid.uuid4().hex[:10]}"
    yield k
    for x in rclient.scan_iter(match=f"{k}*"):
        rclient.delete(x)


class Counting(AutoPipelineRedis):
    """Counts the round trips: single commands and pipelines sent."""

    trips = 0

    async def _send(self, batch):
        Counting.trips += 1
        await super()._send(batch)


def test_concurrent_commands_share_round_trips(key, rclient):
    async def main():
        client = Counting.from_url(redis_test_url(), client_name=key)
        try:
            replies = await asyncio.gather(*(client.incr(key) for _ in range(300)))
            conns = sum(c["name"] == key for c in rclient.client_list())
            return replies, int(await client.get(key)), Counting.trips, conns
        finally:
            await client.aclose()

    replies, total, trips, conns = asyncio.run(main())
    assert sorted(replies) == list(range(1, 301)) and total == 300
    assert trips <= 3 and conns <= 2


def test_each_caller_gets_its_own_error_and_reply(key, rclient):
    rclient.set(key, "text")

    async def main():
        client = AutoPipelineRedis.from_url(redis_test_url())
        try:
            return await asyncio.gather(client.hset(key, "f", "v"), client.get(key), client.incr(f"{key}:n"),
                                        client.set(f"{key}:b", True), client.set(f"{key}:m", memoryview(b"mv")),
                                        client.get(f"{key}:m"), return_exceptions=True)
        finally:
            await client.aclose()

    wrong, value, n, refused, stored, read = asyncio.run(main())
    assert isinstance(wrong, redis.ResponseError) and "WRONGTYPE" in str(wrong)
    assert value == b"text" and n == 1
    assert isinstance(refused, redis.DataError) and stored is True and read == b"mv"


def test_scripts_and_blocking_commands(key):
    async def main():
        client = AutoPipelineRedis.from_url(redis_test_url())
        try:
            # a script Redis has never seen: the first EVALSHAs fail NOSCRIPT inside a batch and reload it
            script = client.register_script(f"-- {key}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])")
            blocked = asyncio.create_task(client.blpop([f"{key}:list"], timeout=3))
            scripted = await asyncio.gather(*(script(keys=[key], args=[2]) for _ in range(5)))
            done_while_blocked = not blocked.done()
            await client.rpush(f"{key}:list", "x")
            return scripted, done_while_blocked, await blocked
        finally:
            await client.aclose()

    scripted, others_ran, popped = asyncio.run(main())
    assert sorted(scripted) == [2, 4, 6, 8, 10]
    assert others_ran and tuple(popped) == (f"{key}:list".encode(), b"x")


def test_connection_failure_reaches_every_caller():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main():
        client = AutoPipelineRedis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=1)
        try:
            return await asyncio.gather(client.get("a"), client.get("b"), return_exceptions=True)
        finally:
            await client.aclose()

    errors = asyncio.run(main())
    assert all(isinstance(e, redis.ConnectionError) for e in errors)


def test_handler_client_is_auto_pipelining(jobq_settings):
    async def main():
        client = handler_client(jobq_settings)
        try:
            return type(client), await client.ping()
        finally:
            await client.aclose()

    kind, pong = asyncio.run(main())
    assert kind is AutoPipelineRedis and pong is True


async def incr_async(job):
    return await job.redis.incr(job.data["key"])


def incr_thread(job):
    return job.redis.incr(job.data["key"])


def test_handlers_use_job_redis(jobq_harness, key, rclient):
    a = QueueSpec(name="apa", handler=incr_async, concurrency=20)
    t = QueueSpec(name="apt", handler=incr_thread, concurrency=4)
    jobq_harness.start(a, t)
    ids = [jobq_harness.manager.add_job("apa", None, {"key": key}).id for _ in range(60)]
    ids_t = [jobq_harness.manager.add_job("apt", None, {"key": f"{key}:t"}).id for _ in range(8)]
    results = [jobq_harness.wait("apa", i).result for i in ids]
    results_t = [jobq_harness.wait("apt", i).result for i in ids_t]
    assert sorted(results) == list(range(1, 61)) and sorted(results_t) == list(range(1, 9))
    assert int(rclient.get(key)) == 60


def test_job_redis_outside_a_worker_says_so():
    from jobq.context import JobContext

    ctx = JobContext(id="j", queue="q", name="", attempt=1, created_at=0, token="t")
    with pytest.raises(RuntimeError, match=r"job\.redis"):
        ctx.redis  # noqa: B018


def test_uvloop_factory_honours_the_switch(monkeypatch):
    from jobq.worker import loop_factory

    monkeypatch.setenv("JOBQ_UVLOOP", "0")
    assert loop_factory() is None
    monkeypatch.delenv("JOBQ_UVLOOP")
    factory = loop_factory()
    try:
        import uvloop
    except ImportError:
        assert factory is None
    else:
        assert factory is uvloop.new_event_loop
        with asyncio.Runner(loop_factory=factory) as runner:
            assert isinstance(runner.get_loop(), uvloop.Loop)
