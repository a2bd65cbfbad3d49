"""Celery app and task for the core benchmark (imported by the producer and by ``celery worker``).
Every kombu key lives under a per-run ``global_keyprefix``."""

from __future__ import annotations

import os
import time

from celery import Celery
from clock import record

app = Celery("jobq_bench", broker=os.environ["BENCH_REDIS_URL"])
app.conf.update(
    broker_transport_options={"global_keyprefix": os.environ["BENCH_CELERY_KEYPREFIX"]},
    broker_connection_retry_on_startup=True,
    task_default_queue=os.environ["BENCH_QUEUE"],
    task_ignore_result=True,
    worker_prefetch_multiplier=int(os.environ.get("BENCH_CELERY_PREFETCH", "4")),
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    worker_hijack_root_logger=False,
)


@app.task(name="noop")
def noop(t: float | None = None) -> None:
    started = time.monotonic()
    if t is not None:
        record(t, started)
