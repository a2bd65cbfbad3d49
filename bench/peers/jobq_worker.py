"""jobq worker for the core benchmark: one process, one queue, an async no-op handler."""

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


def main() -> None:
    settings = Settings.from_env(redis_url=os.environ["BENCH_REDIS_URL"], prefix=os.environ["BENCH_PREFIX"])
    spec = QueueSpec(name=os.environ["BENCH_QUEUE"], handler=noop,
                     concurrency=int(os.environ["BENCH_CONCURRENCY"]))
    Worker([spec], settings).run_forever()


if __name__ == "__main__":
    main()
