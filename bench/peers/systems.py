"""Producer-side adapters, one per queue system the core benchmark compares.

Each adapter knows how to start its system's worker as a separate process, how to enqueue no-op jobs
(one call per job, and in bulk where the system has a bulk API), how to send paced latency jobs that
carry the producer's ``time.monotonic()``, and how many of the jobs it enqueued are not finished yet
(read from the system's own Redis keys, so the handlers stay no-ops). Every key, queue name, job id
and namespace contains the run's tag, so cleaning up deletes only what this run created.
"""

from __future__ import annotations

import abc
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import redis

PEERS = Path(__file__).resolve().parent
BULLMQ_DIR = PEERS / "bullmq"


class Run:
    """What every adapter of one benchmark run shares."""

    def __init__(self, redis_url: str, tag: str, workdir: Path, concurrency: int) -> None:
        self.redis_url = redis_url
        self.tag = tag
        self.workdir = workdir
        self.concurrency = concurrency
        self.redis = redis.Redis.from_url(redis_url)


def paced(n: int, rate: float, send: Callable[[float], Any]) -> None:
    """Call ``send(t)`` ``n`` times at a steady ``rate``/s; ``t`` is read just before each call."""
    interval = 1 / rate
    next_at = time.monotonic()
    for _ in range(n):
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        next_at += interval
        send(time.monotonic())


class System(abc.ABC):
    """One queue system under test (the base class documents the contract)."""

    key: ClassVar[str] = ""
    label: ClassVar[str] = ""
    #: how ``enqueue_bulk`` adds many jobs, or None when the system has no way faster than single calls
    bulk_method: ClassVar[str | None] = None
    #: jobs in the drain test (a system far slower than the rest drains fewer, to keep the run short)
    drain_jobs: int | None = None

    def __init__(self, run: Run) -> None:
        self.run = run
        self.name = f"{run.tag}-{self.key}"
        self.lat_file = run.workdir / f"{self.name}-{os.urandom(4).hex()}.lat"
        self.lat_file.touch()
        self.enqueued = 0

    @abc.abstractmethod
    def describe(self) -> str:
        """The settings this system runs with, for the report."""

    @abc.abstractmethod
    def worker_command(self) -> list[str]:
        """The command that starts one worker process."""

    def worker_env(self) -> dict[str, str]:
        return {
            "BENCH_REDIS_URL": self.run.redis_url,
            "BENCH_QUEUE": self.name,
            "BENCH_CONCURRENCY": str(self.run.concurrency),
            "BENCH_LAT_FILE": str(self.lat_file),
            "PYTHONPATH": str(PEERS),
        }

    @abc.abstractmethod
    def enqueue_single(self, n: int) -> float:
        """Add ``n`` no-op jobs with one API call each; return the seconds spent."""

    def enqueue_bulk(self, n: int, batch: int) -> float:
        """Add ``n`` no-op jobs ``batch`` at a time with the system's bulk API; return the seconds spent."""
        raise TypeError(f"{self.label} has no bulk API (bulk_method is None): the benchmark never calls this")

    @abc.abstractmethod
    def send_paced(self, n: int, rate: float) -> None:
        """Add ``n`` latency-probe jobs at a steady ``rate`` per second."""

    @abc.abstractmethod
    def pending(self) -> int:
        """Jobs this adapter enqueued that have not finished."""

    def close(self) -> None:  # noqa: B027 (optional: only adapters holding connections override it)
        """Release what the adapter holds."""


# -- jobq -------------------------------------------------------------------------------------


class Jobq(System):
    key = "jobq"
    label = "jobq"
    bulk_method = "add_jobs() (one Lua call per batch)"

    def __init__(self, run: Run) -> None:
        super().__init__(run)
        import jobq

        self.settings = jobq.Settings.from_env(redis_url=run.redis_url, prefix=f"{run.tag}-jobq")
        spec = jobq.QueueSpec(name=self.name, handler=_never_called)
        self.manager = jobq.QueueManager(self.settings, [spec])

    def describe(self) -> str:
        return (f"jobq.worker.Worker, one QueueSpec(concurrency={self.run.concurrency}), async handler, "
                "other settings default (lease 30 s, results kept 7 days)")

    def worker_command(self) -> list[str]:
        return [sys.executable, str(PEERS / "jobq_worker.py")]

    def worker_env(self) -> dict[str, str]:
        return {**super().worker_env(), "BENCH_PREFIX": self.settings.prefix}

    def enqueue_single(self, n: int) -> float:
        add, q = self.manager.add_job, self.name
        t0 = time.perf_counter()
        for _ in range(n):
            add(q, None, {})
        self.enqueued += n
        return time.perf_counter() - t0

    def enqueue_bulk(self, n: int, batch: int) -> float:
        add, q = self.manager.add_jobs, self.name
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            add(q, [(None, {}) for _ in range(min(batch, n - i))])
        self.enqueued += n
        return time.perf_counter() - t0

    def send_paced(self, n: int, rate: float) -> None:
        add, q = self.manager.add_job, self.name
        paced(n, rate, lambda t: add(q, None, {"t": t}))
        self.enqueued += n

    def pending(self) -> int:
        m = self.manager.get_queue_metrics(self.name)
        return m["waiting"] + m["active"] + m["delayed"]

    def completed(self) -> int:
        return self.manager.get_queue_metrics(self.name)["completed"]

    def close(self) -> None:
        self.manager.close()


def _never_called(job: Any) -> None:
    raise AssertionError("the producer's spec only names the queue")


# -- arq --------------------------------------------------------------------------------------


class Arq(System):
    key = "arq"
    label = "arq"
    bulk_method = "no bulk API: asyncio.gather of enqueue_job(), 100 at a time"
    poll_delay = 0.01

    def __init__(self, run: Run) -> None:
        super().__init__(run)
        from arq import create_pool
        from arq.connections import RedisSettings

        self.loop = asyncio.Runner()
        self.pool = self.loop.run(create_pool(RedisSettings.from_dsn(run.redis_url), default_queue_name=self.name))
        self.seq = 0

    def describe(self) -> str:
        return (f"arq.worker.Worker(max_jobs={self.run.concurrency}, poll_delay={self.poll_delay}) "
                "(default 0.5 s: an idle worker looks for jobs twice a second, which alone puts ~250 ms on "
                "the median latency), other settings default (results kept 1 h)")

    def worker_command(self) -> list[str]:
        return [sys.executable, str(PEERS / "arq_worker.py")]

    def worker_env(self) -> dict[str, str]:
        return {**super().worker_env(), "BENCH_ARQ_POLL_DELAY": str(self.poll_delay)}

    def _ids(self, n: int) -> list[str]:
        # explicit ids carry the run tag, so the job and result keys can be found and deleted afterwards
        first, self.seq = self.seq, self.seq + n
        return [f"{self.name}-{i}" for i in range(first, first + n)]

    def enqueue_single(self, n: int) -> float:
        ids = self._ids(n)

        async def go() -> float:
            enqueue = self.pool.enqueue_job
            t0 = time.perf_counter()
            for job_id in ids:
                await enqueue("noop", _job_id=job_id)
            return time.perf_counter() - t0

        self.enqueued += n
        return self.loop.run(go())

    def enqueue_bulk(self, n: int, batch: int) -> float:
        ids = self._ids(n)

        async def go() -> float:
            enqueue = self.pool.enqueue_job
            t0 = time.perf_counter()
            for i in range(0, n, 100):
                await asyncio.gather(*(enqueue("noop", _job_id=j) for j in ids[i:i + 100]))
            return time.perf_counter() - t0

        self.enqueued += n
        return self.loop.run(go())

    def send_paced(self, n: int, rate: float) -> None:
        ids = self._ids(n)

        async def go() -> None:
            interval = 1 / rate
            next_at = time.monotonic()
            for job_id in ids:
                pause = next_at - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)
                next_at += interval
                await self.pool.enqueue_job("noop", time.monotonic(), _job_id=job_id)

        self.loop.run(go())
        self.enqueued += n

    def pending(self) -> int:
        return self.run.redis.zcard(self.name)  # arq removes a job from its queue zset when it finishes

    def close(self) -> None:
        self.loop.run(self.pool.aclose())
        self.loop.close()


# -- RQ ---------------------------------------------------------------------------------------


class _Rq(System):
    bulk_method = "Queue.enqueue_many() (one pipeline per batch)"
    worker_class = ""
    CLEAN_LOCK = b"rq:clean_groups"  # a global lock key RQ's worker sets (with a TTL)

    def __init__(self, run: Run) -> None:
        super().__init__(run)
        from rq import Queue

        self.Queue = Queue
        self.queue = Queue(self.name, connection=run.redis)
        self.seq = 0
        self.had_lock = bool(run.redis.exists(self.CLEAN_LOCK))

    def worker_command(self) -> list[str]:
        return [sys.executable, str(PEERS / "rq_worker.py")]

    def worker_env(self) -> dict[str, str]:
        return {**super().worker_env(), "BENCH_RQ_CLASS": self.worker_class,
                "BENCH_WORKER_NAME": f"{self.name}-worker-{self.seq}"}

    def _ids(self, n: int) -> list[str]:
        first, self.seq = self.seq, self.seq + n
        return [f"{self.name}-{i}" for i in range(first, first + n)]

    def enqueue_single(self, n: int) -> float:
        ids = self._ids(n)
        enqueue = self.queue.enqueue
        t0 = time.perf_counter()
        for job_id in ids:
            enqueue("rq_tasks.noop", job_id=job_id)
        self.enqueued += n
        return time.perf_counter() - t0

    def enqueue_bulk(self, n: int, batch: int) -> float:
        ids = self._ids(n)
        prepare = self.Queue.prepare_data
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            self.queue.enqueue_many([prepare("rq_tasks.noop", job_id=j) for j in ids[i:i + batch]])
        self.enqueued += n
        return time.perf_counter() - t0

    def send_paced(self, n: int, rate: float) -> None:
        ids = iter(self._ids(n))
        paced(n, rate, lambda t: self.queue.enqueue("rq_tasks.noop", t, job_id=next(ids)))
        self.enqueued += n

    def pending(self) -> int:
        r = self.run.redis
        done = r.zcard(self.queue.finished_job_registry.key) + r.zcard(self.queue.failed_job_registry.key)
        return self.enqueued - done

    def close(self) -> None:
        r = self.run.redis
        # RQ's global sets hold members named after this run's queue and workers: remove only those
        for key in (b"rq:queues", b"rq:workers"):
            mine = [m for m in r.smembers(key) if self.run.tag.encode() in m]
            if mine:
                r.srem(key, *mine)
        if not self.had_lock:
            r.delete(self.CLEAN_LOCK)


class RqSimple(_Rq):
    key = "rq-simple"
    label = "RQ SimpleWorker"
    worker_class = "simple"
    drain_jobs = 5_000

    def describe(self) -> str:
        return ("rq.SimpleWorker (jobs run in the worker process), defaults (results kept 500 s); drains "
                "5,000 jobs instead of 20,000 to keep the run short")


class RqFork(_Rq):
    key = "rq-fork"
    label = "RQ Worker (fork)"
    worker_class = "fork"
    drain_jobs = 500

    def describe(self) -> str:
        return ("rq.Worker, RQ's default (forks a child per job), defaults; drains 500 jobs "
                "instead of 20,000 to keep the run short")


# -- Dramatiq ---------------------------------------------------------------------------------


class Dramatiq(System):
    key = "dramatiq"
    label = "Dramatiq"
    threads = 8
    worker_timeout_ms = 10

    def __init__(self, run: Run) -> None:
        super().__init__(run)
        self.namespace = f"{run.tag}-dramatiq"
        os.environ.update(self.worker_env())
        sys.path.insert(0, str(PEERS))
        import dramatiq_app

        self.actor = dramatiq_app.noop
        self.broker = dramatiq_app.broker

    def describe(self) -> str:
        return (f"dramatiq CLI, RedisBroker, --processes 1 --threads {self.threads}, "
                f"dramatiq_worker_timeout={self.worker_timeout_ms} ms (default 1000: the idle fetch backoff "
                "grows to 1 s, which put p99 near 400 ms in a trial run), default middleware "
                "(AgeLimit, TimeLimit, ShutdownNotifications, Callbacks, Pipelines, Retries); the CLI runs a "
                "supervisor process and one worker process, RSS counts both")

    def worker_command(self) -> list[str]:
        return [sys.executable, "-m", "dramatiq", "dramatiq_app", "--processes", "1", "--threads",
                str(self.threads), "--path", str(PEERS)]

    def worker_env(self) -> dict[str, str]:
        return {**super().worker_env(), "BENCH_DRAMATIQ_NAMESPACE": self.namespace,
                "dramatiq_worker_timeout": str(self.worker_timeout_ms)}

    def enqueue_single(self, n: int) -> float:
        send = self.actor.send
        t0 = time.perf_counter()
        for _ in range(n):
            send()
        self.enqueued += n
        return time.perf_counter() - t0

    def send_paced(self, n: int, rate: float) -> None:
        paced(n, rate, lambda t: self.actor.send(t))
        self.enqueued += n

    def pending(self) -> int:
        # a message stays in the queue's .msgs hash until its worker acknowledges it
        return self.run.redis.hlen(f"{self.namespace}:{self.name}.msgs")


# -- Celery -----------------------------------------------------------------------------------


class Celery(System):
    key = "celery"
    label = "Celery"

    def __init__(self, run: Run) -> None:
        super().__init__(run)
        self.keyprefix = f"{run.tag}-celery:"
        os.environ.update(self.worker_env())
        sys.path.insert(0, str(PEERS))
        import celery_app

        self.task = celery_app.noop

    def describe(self) -> str:
        return ("celery worker --pool=solo (one process) --without-gossip --without-mingle "
                "--without-heartbeat, Redis broker, prefetch multiplier 4 (default), results ignored, "
                "early ack (default)")

    def worker_command(self) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool=solo", "--without-gossip",
                "--without-mingle", "--without-heartbeat", "--loglevel=WARNING", "-Q", self.name]

    def worker_env(self) -> dict[str, str]:
        return {**super().worker_env(), "BENCH_CELERY_KEYPREFIX": self.keyprefix}

    def enqueue_single(self, n: int) -> float:
        delay = self.task.delay
        t0 = time.perf_counter()
        for _ in range(n):
            delay()
        self.enqueued += n
        return time.perf_counter() - t0

    def send_paced(self, n: int, rate: float) -> None:
        paced(n, rate, lambda t: self.task.delay(t))
        self.enqueued += n

    def pending(self) -> int:
        r = self.run.redis
        return r.llen(self.keyprefix + self.name) + r.hlen(self.keyprefix + "unacked")


# -- BullMQ (Node) ----------------------------------------------------------------------------


class Bullmq(System):
    key = "bullmq"
    label = "BullMQ (Node)"
    bulk_method = "Queue.addBulk()"

    def __init__(self, run: Run) -> None:
        super().__init__(run)
        self.prefix = f"{run.tag}-bull"
        if not (BULLMQ_DIR / "node_modules" / "bullmq").is_dir():
            raise RuntimeError("BullMQ is not installed: run bench/setup.sh")

    def describe(self) -> str:
        version = json.loads((BULLMQ_DIR / "node_modules" / "bullmq" / "package.json").read_text())["version"]
        node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
        return (f"BullMQ {version} on Node {node}, one Worker(concurrency={self.run.concurrency}) process, "
                "other options default (completed jobs kept); producer is a Node process too")

    def worker_command(self) -> list[str]:
        return ["node", str(BULLMQ_DIR / "worker.mjs")]

    def worker_env(self) -> dict[str, str]:
        return {**super().worker_env(), "BENCH_PREFIX": self.prefix}

    def _produce(self, *argv: str) -> float:
        out = subprocess.run(["node", str(BULLMQ_DIR / "producer.mjs"), *argv], capture_output=True, text=True,
                             env={**os.environ, **self.worker_env()}, timeout=600, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"BullMQ producer failed: {out.stderr.strip()[-2000:]}")
        return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])

    def enqueue_single(self, n: int) -> float:
        seconds = self._produce("single", str(n))
        self.enqueued += n
        return seconds

    def enqueue_bulk(self, n: int, batch: int) -> float:
        seconds = self._produce("bulk", str(n), str(batch))
        self.enqueued += n
        return seconds

    def send_paced(self, n: int, rate: float) -> None:
        self._produce("paced", str(n), str(rate))
        self.enqueued += n

    def pending(self) -> int:
        r = self.run.redis
        base = f"{self.prefix}:{self.name}:"
        return self.enqueued - r.zcard(base + "completed") - r.zcard(base + "failed")


SYSTEMS: dict[str, type[System]] = {
    cls.key: cls for cls in (Jobq, Arq, RqSimple, RqFork, Dramatiq, Celery, Bullmq)
}
