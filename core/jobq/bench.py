"""``jobq bench``: what jobq does on this machine's Redis, measured in one process.

Bulk enqueue of N no-op jobs, drain by one worker, then enqueue-to-start latency at a steady
300 jobs/s with the worker idle-blocked in Redis (the usual production situation).
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
import uuid
from typing import Any

import attrs
import redis

from .config import Settings
from .keys import delete_prefix
from .queue import QueueManager
from .spec import QueueSpec
from .waiting import wait_until
from .worker import Worker


def run_bench(settings: Settings, *, n: int = 20_000, concurrency: int = 256, rate: float = 300.0,
              samples: int = 600) -> dict[str, Any]:
    settings = attrs.evolve(settings, prefix=f"{settings.prefix}-bench-{uuid.uuid4().hex[:8]}", events_maxlen=1000)
    started: dict[str, float] = {}

    async def noop(job: Any) -> None:
        if job.name == "lat":
            started[job.id] = time.perf_counter()

    spec = QueueSpec(name="bench", handler=noop, concurrency=concurrency, retries=0)
    manager = QueueManager(settings, [spec])
    try:
        t0 = time.perf_counter()
        for i in range(0, n, 1000):
            manager.add_jobs("bench", [(None, {}) for _ in range(min(1000, n - i))])
        enqueue_s = time.perf_counter() - t0

        worker = Worker([spec], settings)
        thread = threading.Thread(target=lambda: asyncio.run(worker.run()), daemon=True)
        t1 = time.perf_counter()
        thread.start()
        wait_until(lambda: manager.get_queue_metrics("bench")["completed"] >= n, 600, 0.005, "drain")
        drain_s = time.perf_counter() - t1

        sent: dict[str, float] = {}
        interval = 1 / rate
        next_at = time.perf_counter()
        for _ in range(samples):
            pause = next_at - time.perf_counter()
            if pause > 0:
                time.sleep(pause)  # pacing the producer; sleeping frees the GIL for the worker thread
            next_at += interval
            job_id = uuid.uuid4().hex
            sent[job_id] = time.perf_counter()
            manager.add_job("bench", job_id, {}, name="lat")
        wait_until(lambda: len(started) >= samples, 60, 0.005, "latency samples")
        worker.stop()
        thread.join(30)
        lat = sorted((started[k] - sent[k]) * 1000 for k in sent)
        q = statistics.quantiles(lat, n=100)
        return {
            "jobs": n, "enqueue_per_s": n / enqueue_s, "drain_per_s": n / drain_s, "drain_s": drain_s,
            "latency_ms": {"p50": q[49], "p90": q[89], "p99": q[98], "max": lat[-1]},
            "latency_samples": samples, "latency_rate_per_s": rate,
        }
    finally:
        manager.shutdown()
        client = redis.Redis.from_url(settings.redis_url)
        delete_prefix(client, settings.prefix)
        client.close()
