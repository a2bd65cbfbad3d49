"""A Redis at ``maxmemory`` (a private ``redis-server``) and a Redis that is gone: producers get jobq
errors saying nothing was written, and a worker started meanwhile serves and drains."""

from __future__ import annotations

import logging
import socket

import pytest
import redis
from jobq import EnqueueError, QueueFull, QueueSpec, QueueUnavailable
from jobq.queue import AsyncQueueManager, QueueManager
from jobq.testing import Harness, RedisServer, make_test_settings, wait_until

QUEUE = QueueSpec(name="full", handler=lambda job: {"n": job.data["n"]}, concurrency=4)


def test_a_full_redis_gives_queue_full_and_writes_nothing(jobq_redis_server: RedisServer) -> None:
    settings = make_test_settings(redis_url=jobq_redis_server.url)
    with QueueManager(settings, [QUEUE]) as qm:
        qm.add_job("full", "before", {"n": 0})
        jobq_redis_server.fill()
        keys = sorted(jobq_redis_server.client.keys("*"))
        with pytest.raises(QueueFull) as info:
            qm.add_job("full", "j1", {"n": 1})
        assert isinstance(info.value, EnqueueError)
        assert isinstance(info.value.__cause__, redis.exceptions.OutOfMemoryError)
        assert info.value.queue == "full" and "nothing was enqueued" in str(info.value)
        with pytest.raises(QueueFull):
            qm.add_jobs("full", [(f"b{i}", {"n": i}) for i in range(10)])
        with pytest.raises(QueueFull):  # a job that waits for another is created in one script too
            qm.add_job("full", "dep", {"n": 2}, depends_on=[("full", "before")])
        assert sorted(jobq_redis_server.client.keys("*")) == keys, "a refused enqueue writes nothing"
        assert qm.get_job_status("full", "before") == "waiting", "reads still work"


async def test_the_async_producer_gets_the_same_errors(jobq_redis_server: RedisServer) -> None:
    settings = make_test_settings(redis_url=jobq_redis_server.url)
    qm = AsyncQueueManager(settings, [QUEUE])
    try:
        jobq_redis_server.fill()
        with pytest.raises(QueueFull):
            await qm.add_job("full", "j1", {"n": 1})
    finally:
        await qm.shutdown()


@pytest.mark.parametrize("sync", [True, False])
async def test_an_unreachable_redis_gives_queue_unavailable(sync: bool) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there
    settings = make_test_settings(redis_url=f"redis://127.0.0.1:{port}/0", socket_timeout=1)
    strict = QueueSpec(name="other", handler=lambda job: None)
    if sync:
        qm = QueueManager(settings, [strict], strict=True)
        with pytest.raises(QueueUnavailable, match="cannot reach Redis") as info:
            qm.add_job("other", "j1", {})
        qm.shutdown()
    else:
        aqm = AsyncQueueManager(settings, [], strict=True)  # the unknown queue needs a lookup first
        with pytest.raises(QueueUnavailable, match="cannot reach Redis") as info:
            await aqm.add_job("other", "j1", {})
        await aqm.shutdown()
    assert not isinstance(info.value, QueueFull) and isinstance(info.value.__cause__, redis.ConnectionError)


def test_a_worker_started_on_a_full_redis_serves_and_drains(
    jobq_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_test_settings(redis_url=jobq_redis_server.url)
    harness = Harness(settings)
    try:
        harness.manager.specs["full"] = QUEUE
        jobs = harness.manager.add_jobs("full", [(f"j{i}", {"n": i}) for i in range(20)])
        jobq_redis_server.fill()
        with caplog.at_level(logging.WARNING, logger="jobq.worker"):
            # before the fix: OutOfMemoryError from the start-up announcement, and the worker exited
            worker = harness.start(QUEUE, presence_interval=0.5)
            assert worker.ready
            for job in jobs:
                done = harness.wait("full", job.id, timeout=20)
                assert (done.state, done.result) == ("completed", {"n": done.data["n"]})
        assert any("maxmemory" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
        jobq_redis_server.unfill()
        wait_until(lambda: harness.manager.list_workers(), 10, message="the worker to announce itself once it can")
    finally:
        harness.close()


def test_a_redis_that_does_not_answer_gives_queue_unavailable(jobq_redis_server: RedisServer) -> None:
    settings = make_test_settings(redis_url=jobq_redis_server.url, socket_timeout=0.3)
    with QueueManager(settings, [QUEUE]) as qm:
        qm.add_job("full", "warm", {"n": 0})  # connected and scripts loaded: the pause hits the enqueue itself
        jobq_redis_server.client.client_pause(1500, all=True)
        with pytest.raises(QueueUnavailable, match="did not answer in time") as info:
            qm.add_job("full", "j1", {"n": 1})
    assert isinstance(info.value.__cause__, redis.TimeoutError)
