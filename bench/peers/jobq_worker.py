"""jobq worker for the benchmarks: one process, one queue, the bare engine (``Worker([spec])``).

``BENCH_HANDLER``: ``noop`` (default) reads its arguments and returns; ``incr`` also runs one Redis
``INCR`` through ``job.redis`` (the worker's shared, auto-pipelining client).
"""

from __future__ import annotations

import os
import time
from typing import Any

from clock import record
from jobq import QueueSpec, Settings
from jobq.worker import Worker


async def noop(job: Any) -> None:
    started = time.monotonic()
    t = job.data.get("t")  # every handler reads its arguments, as a real one would
    if t is not None:
        record(t, started)


async def incr(job: Any) -> None:
    started = time.monotonic()
    t = job.data.get("t")
    if t is not None:
        record(t, started)
    await job.redis.incr(INCR_KEY)


INCR_KEY = f"{os.environ.get('BENCH_PREFIX', 'bench')}:incr"


def handler() -> Any:
    return {"noop": noop, "incr": incr}[os.environ.get("BENCH_HANDLER", "noop")]


def main() -> None:
    settings = Settings.from_env(redis_url=os.environ["BENCH_REDIS_URL"], prefix=os.environ["BENCH_PREFIX"])
    spec = QueueSpec(name=os.environ["BENCH_QUEUE"], handler=handler(),
                     concurrency=int(os.environ["BENCH_CONCURRENCY"]))
    Worker([spec], settings).run_forever()


if __name__ == "__main__":
    main()
