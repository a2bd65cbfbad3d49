"""Dramatiq broker and actor for the core benchmark (imported by the producer and by the
``dramatiq`` CLI). Its Redis keys live under a per-run namespace."""

from __future__ import annotations

import os
import time

import dramatiq
from clock import record
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=os.environ["BENCH_REDIS_URL"], namespace=os.environ["BENCH_DRAMATIQ_NAMESPACE"])
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=os.environ["BENCH_QUEUE"], actor_name="noop")
def noop(t: float | None = None) -> None:
    started = time.monotonic()
    if t is not None:
        record(t, started)
