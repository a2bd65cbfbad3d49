"""Release latency of a dependent job: from its last dependency's handler returning to its own
handler starting, across two queues, through one worker process.

    .venv/bin/python bench/dependency_bench.py [--pairs 300] [--rate 50]

Each pair is a job A on queue ``dep-a`` (its handler takes 20 ms) and a job B on ``dep-b`` added
with ``depends_on=[A]`` while A runs; pairs are added at a steady rate to an idle worker. A's
handler notes ``time.monotonic()`` as it returns and B's as it starts (one process, one clock). For
comparison the same worker runs pairs chained by hand, where A's handler enqueues B itself on its
way out (the usual workaround without dependencies; it loses B when the worker dies between the
two). Prints p50/p99/max in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
import uuid

from jobq import QueueSpec, Settings
from jobq.keys import delete_prefix
from jobq.queue import AsyncQueueManager, QueueManager, make_client
from jobq.worker import Worker

ended: dict[str, float] = {}
started: dict[str, float] = {}
producer: AsyncQueueManager | None = None


async def first(job):
    await asyncio.sleep(0.02)  # still running when its dependent is added
    if job.data.get("chain"):
        await producer.add_job("dep-b", job.id + "-b", {})
    ended[job.id] = time.monotonic()
    return {"n": 1}


async def second(job):
    started[job.id] = time.monotonic()
    return None


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    global producer
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--rate", type=float, default=50.0)
    args = ap.parse_args()
    settings = Settings.from_env(prefix=f"jobqbench-{uuid.uuid4().hex[:8]}")
    specs = [QueueSpec(name="dep-a", handler=first, concurrency=50),
             QueueSpec(name="dep-b", handler=second, concurrency=50)]
    worker = Worker(specs, settings)
    loop_ready = threading.Event()

    def serve() -> None:
        async def run() -> None:
            global producer
            producer = AsyncQueueManager(settings, specs)
            loop_ready.set()
            await worker.run()
            await producer.shutdown()

        asyncio.run(run())

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    loop_ready.wait(10)
    while not worker.ready:
        time.sleep(0.01)
    m = QueueManager(settings, specs)
    try:
        for mode in ("depends_on", "chained by hand"):
            ended.clear()
            started.clear()
            gap = 1 / args.rate
            for i in range(args.pairs):
                a = f"{mode[0]}{i}"
                if mode == "depends_on":
                    m.add_job("dep-a", a, {})
                    m.add_job("dep-b", a + "-b", {}, depends_on=[("dep-a", a)])
                else:
                    m.add_job("dep-a", a, {"chain": True})
                time.sleep(gap)
            deadline = time.monotonic() + 30
            while len(started) < args.pairs and time.monotonic() < deadline:
                time.sleep(0.01)
            lat = [(started[a + "-b"] - ended[a]) * 1000 for a in ended if a + "-b" in started]
            print(f"{mode:<16} pairs {len(lat):>4}/{args.pairs}  release latency ms: "
                  f"p50 {statistics.median(lat):.2f}  p99 {pct(lat, 0.99):.2f}  max {max(lat):.2f}")
    finally:
        worker.stop()
        t.join(30)
        m.shutdown()
        c = make_client(settings)
        delete_prefix(c, settings.prefix)
        c.close()


if __name__ == "__main__":
    main()
