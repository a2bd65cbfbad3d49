"""arq worker for the core benchmark: one process, ``max_jobs`` concurrent coroutines."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from arq.connections import RedisSettings
from arq.worker import Worker, func
from clock import record


async def noop(ctx: dict[str, Any], t: float | None = None) -> None:
    started = time.monotonic()
    if t is not None:
        record(t, started)


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    worker = Worker(
        functions=[func(noop, name="noop")],
        redis_settings=RedisSettings.from_dsn(os.environ["BENCH_REDIS_URL"]),
        queue_name=os.environ["BENCH_QUEUE"],
        max_jobs=int(os.environ["BENCH_CONCURRENCY"]),
        poll_delay=float(os.environ["BENCH_ARQ_POLL_DELAY"]),
        handle_signals=True,
    )
    worker.run()


if __name__ == "__main__":
    main()
