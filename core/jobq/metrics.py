"""Prometheus metrics, written as a default plugin on the job lifecycle hooks.

Counters and histograms are per worker process (sum them across instances in PromQL);
queue depths and worker liveness are read from Redis at scrape time, so every process reports
the same cluster-wide values (use ``max`` across instances for those).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .hookspecs import hookimpl

log = logging.getLogger(__name__)
REGISTRY = CollectorRegistry(auto_describe=True)
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

STARTED = Counter("jobq_jobs_started_total", "Attempts started", ["queue"], registry=REGISTRY)
COMPLETED = Counter("jobq_jobs_completed_total", "Jobs completed", ["queue"], registry=REGISTRY)
FAILED = Counter("jobq_jobs_failed_total", "Jobs failed for good, by reason code", ["queue", "reason"],
                 registry=REGISTRY)
RETRIED = Counter("jobq_jobs_retried_total", "Attempts failed and scheduled for retry, by reason code",
                  ["queue", "reason"], registry=REGISTRY)
DURATION = Histogram("jobq_job_duration_seconds", "Handler run time of completed attempts", ["queue"],
                     buckets=BUCKETS, registry=REGISTRY)
WAIT = Histogram("jobq_job_wait_seconds", "Time from enqueue to start", ["queue"], buckets=BUCKETS,
                 registry=REGISTRY)


@hookimpl
def jobq_job_started(queue: str, wait: float) -> None:
    STARTED.labels(queue).inc()
    WAIT.labels(queue).observe(wait)


@hookimpl
def jobq_job_completed(queue: str, duration: float) -> None:
    COMPLETED.labels(queue).inc()
    DURATION.labels(queue).observe(duration)


@hookimpl
def jobq_job_failed(queue: str, code: str, will_retry: bool) -> None:
    (RETRIED if will_retry else FAILED).labels(queue, code).inc()


class RedisCollector:
    """Queue depth per state and worker liveness, read from Redis on each scrape."""

    def __init__(self, settings: Any, worker: Any = None) -> None:
        from .queue import QueueManager

        self.manager = QueueManager(settings, strict=False)
        self.worker = worker
        self.lock = threading.Lock()

    def collect(self) -> Any:
        depth = GaugeMetricFamily("jobq_queue_jobs", "Jobs per queue and state", labels=["queue", "state"])
        up = GaugeMetricFamily("jobq_redis_up", "1 when Redis answered this scrape")
        alive = GaugeMetricFamily("jobq_workers_alive", "Workers with a fresh heartbeat")
        beat = GaugeMetricFamily("jobq_worker_last_heartbeat_timestamp_seconds",
                                 "Last heartbeat of each known worker", labels=["worker"])
        local = GaugeMetricFamily("jobq_worker_active_jobs", "Jobs running in this process",
                                  labels=["queue"])
        stalled = CounterMetricFamily("jobq_jobs_stalled", "Leases expired and jobs taken back, all workers "
                                      "(from Redis)", labels=["queue"])
        # flow control, per queue only: a label per group would grow without bound (docs/metrics.md)
        limited = GaugeMetricFamily("jobq_queue_rate_limited", "1 while the queue is at its rate limit or holds "
                                    "jobs behind a RateLimited key", labels=["queue"])
        groups = GaugeMetricFamily("jobq_queue_groups", "Groups with ready jobs, by why they wait",
                                   labels=["queue", "state"])
        with self.lock:
            try:
                stats = self.manager.get_queue_stats()
                workers = self.manager.list_workers()
                counters = {q: self.manager.get_counters(q) for q in stats}
                flows = {q: self.manager.get_flow_control(q) for q in stats}
                up.add_metric([], 1)
            except Exception as exc:
                log.warning("metrics scrape could not read Redis: %s", type(exc).__name__)
                stats, workers, counters, flows = {}, [], {}, {}
                up.add_metric([], 0)
        for queue, f in flows.items():
            limited.add_metric([queue], int(f["limited"]))
            for state, key in (("ready", "groups_ready"), ("paused", "groups_paused"),
                               ("rate_limited", "groups_rate_limited")):
                groups.add_metric([queue, state], f[key])
        for queue, m in stats.items():
            for state, n in m.items():
                depth.add_metric([queue, state], n)
        for queue, c in counters.items():
            stalled.add_metric([queue], c.get("stalled", 0))
        alive.add_metric([], sum(1 for w in workers if w["alive"]))
        for w in workers:
            beat.add_metric([w["id"]], w["last_heartbeat"])
        if self.worker is not None:
            for r in self.worker.runners:
                local.add_metric([r.spec.name], len(r.inflight))
        yield from (depth, up, alive, beat, local, stalled, limited, groups)


_collector: RedisCollector | None = None


def serve(port: int, settings: Any, worker: Any = None, addr: str = "0.0.0.0") -> Any:
    """Serve ``/metrics`` on ``port`` from a background thread; returns the server."""
    global _collector
    if _collector is not None:
        REGISTRY.unregister(_collector)
    _collector = RedisCollector(settings, worker)
    REGISTRY.register(_collector)
    server, _thread = start_http_server(port, addr=addr, registry=REGISTRY)
    return server
