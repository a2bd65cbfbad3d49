"""RQ worker for the core benchmark: ``SimpleWorker`` (jobs run in the worker process) or ``Worker``
(RQ's default: a forked child per job, which isolates jobs at the cost of a fork each)."""

from __future__ import annotations

import os

from redis import Redis
from rq import Queue, SimpleWorker, Worker


def main() -> None:
    conn = Redis.from_url(os.environ["BENCH_REDIS_URL"])
    queue = Queue(os.environ["BENCH_QUEUE"], connection=conn)
    cls = SimpleWorker if os.environ["BENCH_RQ_CLASS"] == "simple" else Worker
    worker = cls([queue], connection=conn, name=os.environ["BENCH_WORKER_NAME"])
    worker.work(logging_level="WARNING", with_scheduler=False)


if __name__ == "__main__":
    main()
