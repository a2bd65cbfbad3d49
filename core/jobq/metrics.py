"""Prometheus metrics, written as a default plugin on the job lifecycle hooks.

Counters and histograms are per worker process (sum them across instances in PromQL);
queue depths, stalls and worker liveness are read from Redis at scrape time, so every process
reports the same cluster-wide values (use ``max`` across instances for those). Under
``jobq run --processes N`` the children write their counters to ``PROMETHEUS_MULTIPROC_DIR`` and
the supervisor serves one ``/metrics`` summing them (:mod:`jobq.prefork`).

The per-job series (started, completed, wait and run time) are the hot path: in one process they
are plain numbers under one lock per queue, turned into metric families at scrape time (a
prometheus_client ``inc()``/``observe()`` pair costs several µs per job); in a prefork child they
are prometheus_client metrics, whose values live in the shared directory.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from .hookspecs import hookimpl

log = logging.getLogger(__name__)
REGISTRY = CollectorRegistry(auto_describe=True)
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))  # read once, as prometheus_client does

FAILED = Counter("jobq_jobs_failed_total", "Jobs failed for good, by reason code", ["queue", "reason"],
                 registry=REGISTRY)
RETRIED = Counter("jobq_jobs_retried_total", "Attempts failed and scheduled for retry, by reason code",
                  ["queue", "reason"], registry=REGISTRY)
_HELP = {"started": "Attempts started", "completed": "Jobs completed",
         "duration": "Handler run time of completed attempts", "wait": "Time from enqueue to start"}

#: reason codes the engine itself gives; exported at 0 for every served queue
ENGINE_REASONS = ("ERR_TIMEOUT", "ERR_INVALID_PAYLOAD", "ERR_RESULT_NOT_SERIALIZABLE", "ERR_DEFERRED_TOO_OFTEN")


class _Local:
    """One queue's per-job series as plain numbers (one process)."""

    __slots__ = ("completed", "created", "duration", "duration_sum", "lock", "started", "wait", "wait_sum")

    def __init__(self, queue: str) -> None:
        self.lock = threading.Lock()  # a process may run several workers, each on its own thread
        self.started = self.completed = 0
        self.wait, self.duration = [0] * (len(BUCKETS) + 1), [0] * (len(BUCKETS) + 1)
        self.wait_sum = self.duration_sum = 0.0
        self.created = time.time()

    def start(self, wait: float) -> None:
        with self.lock:
            self.started += 1
            self.wait[bisect.bisect_left(BUCKETS, wait)] += 1  # first bound >= wait: Prometheus' "le"
            self.wait_sum += wait

    def complete(self, duration: float) -> None:
        with self.lock:
            self.completed += 1
            self.duration[bisect.bisect_left(BUCKETS, duration)] += 1
            self.duration_sum += duration


class _Shared:
    """One queue's per-job series as prometheus_client children, looked up once (prefork child)."""

    __slots__ = ("completed", "duration", "started", "wait")

    def __init__(self, queue: str) -> None:
        self.started, self.completed = _STARTED.labels(queue), _COMPLETED.labels(queue)
        self.wait, self.duration = _WAIT.labels(queue), _DURATION.labels(queue)

    def start(self, wait: float) -> None:
        self.started.inc()
        self.wait.observe(wait)

    def complete(self, duration: float) -> None:
        self.completed.inc()
        self.duration.observe(duration)


class _LocalCollector:
    """Exports every :class:`_Local` at scrape time."""

    def collect(self) -> Any:
        started = CounterMetricFamily("jobq_jobs_started", _HELP["started"], labels=["queue"])
        completed = CounterMetricFamily("jobq_jobs_completed", _HELP["completed"], labels=["queue"])
        duration = HistogramMetricFamily("jobq_job_duration_seconds", _HELP["duration"], labels=["queue"])
        wait = HistogramMetricFamily("jobq_job_wait_seconds", _HELP["wait"], labels=["queue"])
        for queue, c in sorted(_series.items()):
            with c.lock:  # type: ignore[union-attr]
                snap = (c.started, c.completed, list(c.wait), c.wait_sum, list(c.duration), c.duration_sum)
            started.add_metric([queue], snap[0], created=c.created)  # type: ignore[union-attr]
            completed.add_metric([queue], snap[1], created=c.created)  # type: ignore[union-attr]
            wait.add_metric([queue], _cumulative(snap[2]), snap[3])
            duration.add_metric([queue], _cumulative(snap[4]), snap[5])
        yield from (started, completed, duration, wait)


def _cumulative(counts: list[int]) -> list[tuple[str, float]]:
    out, total = [], 0
    for bound, n in zip((*(str(float(b)) for b in BUCKETS), "+Inf"), counts, strict=True):
        total += n
        out.append((bound, total))
    return out


_series: dict[str, Any] = {}
if MULTIPROCESS:
    _STARTED = Counter("jobq_jobs_started_total", _HELP["started"], ["queue"], registry=REGISTRY)
    _COMPLETED = Counter("jobq_jobs_completed_total", _HELP["completed"], ["queue"], registry=REGISTRY)
    _DURATION = Histogram("jobq_job_duration_seconds", _HELP["duration"], ["queue"], buckets=BUCKETS,
                          registry=REGISTRY)
    _WAIT = Histogram("jobq_job_wait_seconds", _HELP["wait"], ["queue"], buckets=BUCKETS, registry=REGISTRY)
    _Series: Any = _Shared
else:
    REGISTRY.register(_LocalCollector())
    _Series = _Local


def _of(queue: str) -> Any:
    c = _series.get(queue)
    if c is None:
        c = _series.setdefault(queue, _Series(queue))
    return c


@hookimpl
def jobq_worker_started(specs: list[Any]) -> None:
    """Create every served queue's series at 0, and its known reason codes', before the first job."""
    for spec in specs:
        _of(spec.name)
        reasons = set(ENGINE_REASONS) | set(spec.reason_codes)
        if spec.execution == "process":
            reasons.add("ERR_WORKER_PROCESS_DIED")
        for code in sorted(reasons):
            FAILED.labels(spec.name, code)
            RETRIED.labels(spec.name, code)
        RETRIED.labels(spec.name, "ERR_DEFERRED")


@hookimpl
def jobq_job_started(queue: str, wait: float) -> None:
    (_series.get(queue) or _of(queue)).start(wait)


@hookimpl
def jobq_job_completed(queue: str, duration: float) -> None:
    (_series.get(queue) or _of(queue)).complete(duration)


@hookimpl
def jobq_job_failed(queue: str, code: str, will_retry: bool) -> None:
    (RETRIED if will_retry else FAILED).labels(queue, code).inc()


class RedisCollector:
    """Queue depth per state and worker liveness, read from Redis on each scrape."""

    def __init__(self, settings: Any, worker: Any = None, supervisor: str | None = None) -> None:
        from .queue import QueueManager

        self.manager = QueueManager(settings, strict=False)
        self.worker = worker
        self.supervisor = supervisor
        self.lock = threading.Lock()

    def collect(self) -> Any:
        depth = GaugeMetricFamily("jobq_queue_jobs", "Jobs per queue and state", labels=["queue", "state"])
        up = GaugeMetricFamily("jobq_redis_up", "1 when Redis answered this scrape")
        alive = GaugeMetricFamily("jobq_workers_alive", "Workers with a fresh heartbeat")
        beat = GaugeMetricFamily("jobq_worker_last_heartbeat_timestamp_seconds",
                                 "Last heartbeat of each known worker", labels=["worker"])
        local = GaugeMetricFamily("jobq_worker_active_jobs", "Jobs running in this process (under a prefork "
                                  "supervisor: in its children, as they announced them)", labels=["queue"])
        stalls = GaugeMetricFamily("jobq_queue_stalls", "Leases that expired, all workers since the queue was "
                                   "created (read from Redis: the same in every process, aggregate with max)",
                                   labels=["queue"])
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
            stalls.add_metric([queue], c.get("stalled", 0))
        alive.add_metric([], sum(1 for w in workers if w["alive"]))
        for w in workers:
            beat.add_metric([w["id"]], w["last_heartbeat"])
        if self.worker is not None:
            for r in self.worker.runners:
                local.add_metric([r.spec.name], len(r.inflight))
        elif self.supervisor is not None:
            active: dict[str, int] = {}
            for w in workers:
                if (w.get("supervisor") or {}).get("id") == self.supervisor and w["alive"]:
                    for q in w.get("queues", []):
                        active[q["queue"]] = active.get(q["queue"], 0) + q.get("active", 0)
            for queue, n in sorted(active.items()):
                local.add_metric([queue], n)
        yield from (depth, up, alive, beat, local, stalls, limited, groups)


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
