"""The worker: claims jobs in batches, runs their handlers, keeps their leases, hands them back.

One asyncio loop per process. Per queue, a *pump* makes one Redis round trip per batch
(acknowledge what finished, claim what fits), a *listener* blocks on the queue's marker list
while the queue is empty, and a *reaper* takes back jobs whose lease expired. One heartbeat task
renews every active lease; one presence task announces the worker and its queues.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
import os
import random
import signal
import socket
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
import redis.asyncio

from . import tracing
from .config import Settings
from .context import JobContext
from .errors import Retry, is_retryable, reason_code
from .keys import QueueKeys, queues_key, worker_key, workers_key
from .queue import make_client
from .redaction import redact, secret_values, secrets_in_logs
from .schedules import Scheduler
from .scripts import Scripts
from .serialization import structure_payload
from .spec import QueueSpec, rate_text

log = logging.getLogger(__name__)
STACK_LIMIT = 16_000
MAX_FETCHES = 2  # fetch calls in flight per queue: the worker and Redis work at the same time
MESSAGE_LIMIT = 2_000
_CLIENT_LOCK = threading.Lock()


class _Active:
    """One running attempt."""

    __slots__ = ("attempt", "code", "ctx", "id", "lost", "outcome", "pending", "secrets", "span", "started", "task",
                 "token")

    def __init__(self, id: str, token: str, attempt: int, ctx: JobContext, secrets: list[str]) -> None:
        self.id = id
        self.token = token
        self.attempt = attempt
        self.ctx = ctx
        self.secrets = secrets
        self.lost = False
        self.pending: list[Any] = []
        self.started = time.monotonic()
        self.task: asyncio.Task[None] | None = None
        self.span: Any = None  # the attempt's trace span while tracing is on
        self.outcome = "lost"
        self.code: str | None = None


def _resolve_execution(spec: QueueSpec) -> str:
    if spec.execution != "auto":
        return spec.execution
    fn = spec.handler
    call = type(fn).__call__ if not inspect.isfunction(fn) and callable(fn) else None
    return "async" if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call) else "thread"


def _warm_up(handler: Any) -> None:
    """Runs once per pool process at start: unpickling ``handler`` imports its module."""


def _run_in_child(handler: Any, state: dict[str, Any]) -> tuple[str, Any]:
    """Runs in a pool process: rebuild the context, call the handler, return a picklable outcome."""
    from .process import child_run

    return child_run(handler, state)


class QueueRunner:
    """Everything one worker does for one queue."""

    def __init__(self, worker: Worker, spec: QueueSpec) -> None:
        self.w = worker
        self.spec = spec
        self.keys = QueueKeys(worker.settings.prefix, spec.name)
        self.execution = _resolve_execution(spec)
        self.concurrency = spec.concurrency
        self.inflight: dict[str, _Active] = {}
        self.acks: list[tuple[_Active, str, Any, float]] = []
        self.kick = asyncio.Event()
        self.want_marker = asyncio.Event()
        self.fetching = 0  # fetch calls in flight
        self.batch = -(-self.concurrency // MAX_FETCHES)  # claims per call: half the slots each
        self.fetch_tasks: set[asyncio.Task[None]] = set()
        self.reserved = 0  # slots those calls may fill
        self.drained = False  # the last claim found fewer jobs than it asked for
        self.next_due = -1  # ms until the next delayed job, as the last claim saw it
        self.backoff = 0.025
        self.retry_at = 0.0
        self.last_tick = time.monotonic()
        self.last_beat_ok = time.monotonic()
        self.processed = 0
        self.failures = 0
        self.busy_seconds = 0.0
        self.threads: ThreadPoolExecutor | None = None
        self.zombies = 0  # timed-out thread-mode handlers still holding a thread
        self.procs: Any = None
        if self.execution == "thread":
            self.threads = ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"jobq-{spec.name}")
        elif self.execution == "process":
            import multiprocessing

            import pebble

            from .process import child_init

            self.procs = pebble.ProcessPool(max_workers=self.concurrency, max_tasks=spec.process_max_tasks or 0,
                                            initializer=child_init,
                                            context=multiprocessing.get_context("spawn"))
            for _ in range(self.concurrency):  # spawn and import now, not when the first jobs arrive
                self.procs.schedule(_warm_up, args=(spec.handler,))
        self._fetch_keys = self.keys.fetch_keys()
        self._redis = worker.handler_redis if self.execution == "async" else worker.handler_redis_sync

    # -- the pump ------------------------------------------------------------------------
    async def pump(self) -> None:
        """Send acknowledgements and claims, keeping up to ``MAX_FETCHES`` calls in flight.

        With one call at a time the worker and Redis take turns (each idles while the other works);
        a second call in flight lets the worker start and finish jobs while Redis runs the first.
        Slots a call may fill are reserved until its reply lands, so claims never exceed concurrency.
        """
        while True:
            self.last_tick = time.monotonic()
            self.kick.clear()
            stopping = self.w.stopping
            if stopping and not self.acks and not self.inflight and not self.fetching:
                return
            free = 0 if stopping else self.concurrency - len(self.inflight) - self.zombies - self.reserved
            if self.fetching < MAX_FETCHES and (self.acks or (free > 0 and not self.drained)):
                if self.retry_at > time.monotonic():
                    await asyncio.sleep(self.retry_at - time.monotonic())
                    continue
                acks, self.acks = self.acks, []
                want = min(max(free, 0), self.batch)
                self.fetching += 1
                self.reserved += want
                if not self.inflight and self.fetching == 1:
                    await self._fetch(acks, want)  # nothing runs yet: no overlap to win, save a task hop
                    continue
                task = asyncio.get_running_loop().create_task(self._fetch(acks, want))
                self.fetch_tasks.add(task)  # the loop keeps only weak references to tasks
                task.add_done_callback(self.fetch_tasks.discard)
                continue
            if self.drained and free > 0 and not self.fetching and not stopping:
                # the queue looked empty: block on the marker until a job arrives or one is due
                due = self.next_due
                timeout = self.w.block_timeout if due < 0 else min(self.w.block_timeout, due / 1000)
                self.want_marker.set()
                await self._wait(max(timeout, 0.001))
                self.drained = False
                continue
            await self._wait(1.0)

    async def _fetch(self, acks: list[tuple[_Active, str, Any, float]], want: int) -> None:
        s = self.w.settings
        args: list[Any] = [self.keys.job_prefix, int(s.lease_seconds * 1000), want, os.urandom(6).hex() + ":",
                           s.events_maxlen, f"{int(s.retention_completed * 1000)},{s.retention_completed_count}",
                           f"{int(s.retention_failed * 1000)},{s.retention_failed_count}",
                           self.w.id, len(acks)]
        keys = list(self._fetch_keys)
        for a, result, _r, duration in acks:
            keys.append(self.keys.job(a.id))
            args += (a.id, a.token, result, int(duration * 1000))
        try:
            now_ms, lost, claimed, next_due, to_resolve = await self.w.scripts.fetch(keys=keys, args=args)
        except Exception as exc:  # Redis down, or worse: keep the acks, back off, try again
            self.acks = acks + self.acks
            self.backoff = min(self.backoff * 2, 2.0)
            self.retry_at = time.monotonic() + self.backoff
            log.log(logging.WARNING if isinstance(exc, redis.RedisError) else logging.ERROR,
                    "queue %s: fetch failed (%s: %s); retrying in %.2fs", self.spec.name, type(exc).__name__, exc,
                    self.backoff, exc_info=not isinstance(exc, redis.RedisError))
            return
        finally:
            self.fetching -= 1
            self.reserved -= want
            self.kick.set()
        self.backoff = 0.025
        if to_resolve:
            self.w.resolve_dependents(self.spec.name)
        if acks:
            self._acked(acks, {x.decode() for x in lost})
        for i in range(0, len(claimed), 9):
            self._start(claimed[i:i + 9], now_ms)
        if want:
            self.drained = len(claimed) // 9 < want
            self.next_due = next_due

    async def _wait(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self.kick.wait()
        except TimeoutError:
            pass

    async def listen(self) -> None:
        """While the pump has nothing to do: offer a free slot to enqueue (``idle``), block on this
        worker's inbox and the marker list, and start a handed-over job at once (one hop from
        enqueue to start) or kick the pump to claim."""
        conn, client = self.w.blocking, self.w.client
        inbox, marker = self.keys.inbox(self.w.id), self.keys.marker
        ttl_ms = int((self.w.block_timeout + 1) * 1000)
        backoff = 0.1
        while not self.w._closed:
            await self.want_marker.wait()
            if self.w.stopping:
                return
            record = None
            offered = self.concurrency - len(self.inflight) - self.zombies - self.reserved > 0
            if offered:
                self.reserved += 1  # the slot enqueue may fill
            try:
                if offered:
                    await self.w.scripts.idle(keys=[self.keys.idle], args=[self.idle_member, ttl_ms])
                reply = await conn.blpop([inbox, marker] if offered else [marker], timeout=self.w.block_timeout)
                if reply is not None and reply[0].decode() == inbox:
                    record = reply[1]
                elif offered and not await client.zrem(self.keys.idle, self.idle_member):
                    record = await client.lpop(inbox)  # a hand-over raced our wake-up: it is ours
                backoff = 0.1
            except redis.RedisError as exc:
                log.warning("queue %s: marker wait failed (%s); retrying", self.spec.name, type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                if offered:
                    self.reserved -= 1
            if record is not None:
                self._start_handed(record)
            self.want_marker.clear()
            self.kick.set()

    @property
    def idle_member(self) -> str:
        return f"{int(self.w.settings.lease_seconds * 1000)}|{self.w.id}"

    def _start_handed(self, record: bytes) -> None:
        fields = json.loads(record)
        self._start([x if isinstance(x, bytes) else str(x).encode() for x in fields[:9]], int(fields[9]))

    async def withdraw(self) -> None:
        """At shutdown: take back the idle offer; a job handed over meanwhile goes back to the queue."""
        client = self.w.client
        try:
            if not await client.zrem(self.keys.idle, self.idle_member):
                record = await client.lpop(self.keys.inbox(self.w.id))
                if record is not None:
                    fields = json.loads(record)
                    k = self.keys
                    await self.w.scripts.release(keys=[k.job(fields[0]), k.active, k.wait, k.prio, k.marker,
                                                       k.events, k.seq],
                                                 args=[fields[0], fields[1], self.w.settings.events_maxlen])
        except redis.RedisError as exc:
            log.warning("queue %s: could not withdraw the idle offer (%s); the reaper will recover",
                        self.spec.name, type(exc).__name__)

    # -- running a job -------------------------------------------------------------------
    def _start(self, f: list[bytes], now_ms: int) -> None:
        job_id, token = f[0].decode(), f[1].decode()
        attempt = int(f[2])
        raw, name, opts_raw, created, secrets_raw, ref = f[3], f[4], f[5], f[6], f[7], f[8]
        secrets = json.loads(secrets_raw) if secrets_raw else None
        spec = self.spec
        loader = None
        if spec.payload is not None or secrets:
            loader = _make_loader(spec.payload, secrets)
        opener = None
        if ref:
            storage = self.w.storage
            key = ref.decode()
            opener = lambda: storage.open(key)  # noqa: E731
        ctx = JobContext(id=job_id, queue=spec.name, name=name.decode(), attempt=attempt,
                         created_at=int(created) / 1000, token=token, raw=raw or None, loader=loader,
                         opener=opener, progress=None, settings=self.w.settings, redis=self._redis)
        active = _Active(job_id, token, attempt, ctx, secret_values(secrets) if secrets else [])
        ctx._progress = lambda value, a=active: self._progress(a, value)
        opts = json.loads(opts_raw) if opts_raw else None
        self.inflight[job_id] = active
        if self.w.hooks is not None:
            self.w.hooks.job_started(queue=spec.name, job_id=job_id, attempt=attempt,
                                     wait=max(0.0, (now_ms - int(created)) / 1000))
        args = (active, opts, ref.decode() if ref else None, secrets)
        # a job with no secret values has nothing to scrub: no wrapper on its path to the handler
        run = self._scrubbed(*args) if active.secrets else self._execute(*args)
        if tracing.TRACER is None:
            active.task = asyncio.get_running_loop().create_task(run)
        else:  # the handler runs inside the attempt's span: its own HTTP calls are children of it
            active.span, context = tracing.start_process(spec.name, job_id, attempt, opts.get("tp") if opts else None)
            active.task = asyncio.get_running_loop().create_task(run, context=context)

    async def _scrubbed(self, a: _Active, *args: Any) -> None:
        with secrets_in_logs(a.secrets):  # whatever logs while the job runs, DEBUG libraries included
            await self._execute(a, *args)

    async def _execute(self, a: _Active, opts: dict[str, Any] | None, ref: str | None,
                       secrets: dict[str, Any] | None) -> None:
        spec = self.spec
        timeout = spec.timeout if not opts or opts.get("timeout") is None else opts["timeout"]
        started = time.monotonic()
        try:
            try:
                if opts and opts.get("deps"):
                    await self._load_dependency_results(a, opts["deps"])
                if self.execution == "async":
                    if spec.payload is not None and not spec.lazy_payload:
                        a.ctx.data  # noqa: B018  (validate before the handler runs)
                    if timeout:
                        async with asyncio.timeout(timeout):
                            result = await spec.handler(a.ctx)
                    else:
                        result = await spec.handler(a.ctx)
                elif self.execution == "thread":
                    result = await self._in_thread(a, timeout)
                else:
                    result = await self._in_process(a, ref, secrets, timeout)
                result_json = "null" if result is None else json.dumps(result, separators=(",", ":"),
                                                                       allow_nan=False)
                if a.pending:  # the last progress write lands before the completion
                    await asyncio.gather(*a.pending, return_exceptions=True)
            except asyncio.CancelledError:
                if not a.lost:
                    a.outcome = "released"
                    await self._release(a)
                return
            except TimeoutError:
                await self._fail(a, opts, "error", "ERR_TIMEOUT",
                                 f"attempt exceeded the queue timeout of {timeout}s", "")
                return
            except Retry as r:
                await self._fail(a, opts, "defer", "ERR_DEFERRED", str(r), "", defer=r.delay,
                                 limit_key=getattr(r, "key", None))
                return
            except (TypeError, ValueError) as exc:
                if "JSON" in str(exc) or "serializable" in str(exc):
                    await self._fail(a, opts, "fatal", "ERR_RESULT_NOT_SERIALIZABLE",
                                     f"handler result is not JSON-serialisable: {exc}", "")
                    return
                await self._fail_exc(a, opts, exc)
                return
            except _ChildFailure as cf:
                await self._fail(a, opts, cf.kind, cf.code, cf.message, cf.stack, defer=cf.delay,
                                 limit_key=cf.key)
                return
            except Exception as exc:
                await self._fail_exc(a, opts, exc)
                return
            if a.lost:
                return
            duration = time.monotonic() - started
            self.busy_seconds += duration
            a.outcome = "completed"
            self.acks.append((a, result_json, result, duration))
        finally:
            self.inflight.pop(a.id, None)
            self.kick.set()
            if a.span is not None:
                tracing.end_process(a.span, "cancelled" if a.ctx.cancelled and a.outcome == "lost" else a.outcome,
                                    a.code)

    async def _load_dependency_results(self, a: _Active, deps: list[list[str]]) -> None:
        fields = [f"r:{q}|{i}" for q, i in deps]
        values = await self.w.client.hmget(self.keys.job(a.id), fields)
        a.ctx.dependency_results = {(q, i): json.loads(v) if v else None
                                    for (q, i), v in zip(deps, values, strict=True)}

    async def _in_thread(self, a: _Active, timeout: float | None) -> Any:
        """Run a blocking handler in the pool. A thread cannot be killed: past the timeout the attempt
        fails, and its thread counts against the concurrency until the handler returns, so the next
        job never waits (with its own clock running) behind it."""
        if a.span is None:
            cf = self.threads.submit(_call_sync, self.spec, a.ctx)  # type: ignore[union-attr]
        else:  # carry the attempt's span into the thread
            cf = self.threads.submit(contextvars.copy_context().run, _call_sync, self.spec, a.ctx)  # type: ignore[union-attr]
        fut = asyncio.wrap_future(cf)
        if not timeout:
            return await fut
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            self.zombies += 1
            loop = asyncio.get_running_loop()
            cf.add_done_callback(lambda _f: loop.call_soon_threadsafe(self._zombie_done))
            raise

    def _zombie_done(self) -> None:
        self.zombies -= 1
        self.kick.set()

    async def _in_process(self, a: _Active, ref: str | None, secrets: dict[str, Any] | None,
                          timeout: float | None) -> Any:
        state = {
            "id": a.id, "queue": self.spec.name, "name": a.ctx.name, "attempt": a.attempt,
            "created_at": a.ctx.created_at, "token": a.token, "raw": a.ctx._raw, "ref": ref,
            "secrets": secrets, "payload": self.spec.payload, "lazy": self.spec.lazy_payload,
            "settings": self.w.settings, "dependency_results": a.ctx.dependency_results,
        }
        fut = self.procs.schedule(_run_in_child, args=(self.spec.handler, state), timeout=timeout)
        try:
            kind, value = await asyncio.wrap_future(fut)
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except TimeoutError:
            raise
        except Exception as exc:  # the child died (segfault, OOM kill): counts as a retryable failure
            raise _ChildFailure("error", "ERR_WORKER_PROCESS_DIED", f"handler process died: {exc}", "") from None
        if kind == "ok":
            return value
        raise _ChildFailure(*value)

    async def _fail_exc(self, a: _Active, opts: dict[str, Any] | None, exc: BaseException) -> None:
        kind = "error" if is_retryable(exc) else "fatal"
        stack = "".join(traceback.format_exception(exc))
        await self._fail(a, opts, kind, reason_code(exc), str(exc) or type(exc).__name__, stack)

    async def _fail(self, a: _Active, opts: dict[str, Any] | None, kind: str, code: str, message: str,
                    stack: str, defer: float = 0.0, limit_key: str | None = None) -> None:
        if a.lost:
            return
        spec = self.spec
        message = redact(message, a.secrets)[:MESSAGE_LIMIT]
        stack = redact(stack, a.secrets)[-STACK_LIMIT:]
        retries = spec.retries if not opts or opts.get("retries") is None else opts["retries"]
        backoff = spec.backoff if not opts or opts.get("backoff") is None else opts["backoff"]
        k = self.keys
        args = [a.id, a.token, kind, code, message, stack, retries, int(backoff * 1000), int(defer * 1000),
                spec.max_deferrals, self.w.settings.events_maxlen,
                spec.backoff_jitter * random.random() if spec.backoff_jitter else 0, (limit_key or "")[:200]]
        res = await self.w.call_with_retry(self.w.scripts.fail, [k.job(a.id), k.active, k.delayed, k.failed,
                                                                 k.events, k.stats, k.marker], args)
        if res is None or res[0] == b"LOST":
            a.lost = True
            return
        will_retry = res[0] == b"RETRY"
        a.outcome, a.code = ("deferred" if kind == "defer" else "retry") if will_retry else "failed", code
        if not will_retry and len(res) > 2 and int(res[2]):
            self.w.resolve_dependents(spec.name)
        self.failures += 1
        if kind != "defer":
            log.warning("job %s/%s attempt %d failed: %s: %s%s", spec.name, a.id, a.attempt, code, message,
                        " (retrying)" if will_retry else "")
        if self.w.hooks is not None:
            self.w.hooks.job_failed(queue=spec.name, job_id=a.id, attempt=a.attempt,
                                    code=res[1].decode() if not will_retry else code,
                                    message=message, will_retry=will_retry)

    async def _release(self, a: _Active) -> None:
        k = self.keys
        await self.w.call_with_retry(self.w.scripts.release,
                                     [k.job(a.id), k.active, k.wait, k.prio, k.marker, k.events, k.seq],
                                     [a.id, a.token, self.w.settings.events_maxlen], attempts=3)

    def _acked(self, acks: list[tuple[_Active, str, Any, float]], lost: set[str]) -> None:
        hooks = self.w.hooks
        for a, _json, result, duration in acks:
            if a.id in lost:
                log.warning("job %s/%s: result discarded, this worker lost the job's lease", self.spec.name, a.id)
                continue
            self.processed += 1
            if hooks is not None:
                hooks.job_completed(queue=self.spec.name, job_id=a.id, attempt=a.attempt, result=result,
                                    duration=duration)

    def _progress(self, a: _Active, value: Any) -> None:
        if a.lost:
            return
        raw = json.dumps(value, separators=(",", ":"))
        k = self.keys
        coro = self.w.scripts.progress(keys=[k.job(a.id), k.events],
                                       args=[a.id, a.token, raw, self.w.settings.events_maxlen])
        loop = self.w.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            a.pending.append(loop.create_task(_quiet(coro)))
        else:
            fut = asyncio.run_coroutine_threadsafe(_quiet(coro), loop)
            loop.call_soon_threadsafe(lambda: a.pending.append(asyncio.wrap_future(fut)))
        if len(a.pending) > 64:
            a.pending = [p for p in a.pending if not p.done()]

    # -- leases --------------------------------------------------------------------------
    async def heartbeat(self) -> None:
        if not self.inflight:
            self.last_beat_ok = time.monotonic()
            return
        items = list(self.inflight.values())
        keys = [self.keys.active] + [self.keys.job(a.id) for a in items]
        args: list[Any] = [int(self.w.settings.lease_seconds * 1000)]
        for a in items:
            args += (a.id, a.token)
        try:
            lost = await self.w.scripts.heartbeat(keys=keys, args=args)
        except redis.RedisError as exc:
            log.warning("queue %s: heartbeat failed (%s)", self.spec.name, type(exc).__name__)
            if time.monotonic() - self.last_beat_ok > self.w.settings.lease_seconds * 0.9:
                for a in items:
                    self._lose(a, "leases could not be renewed")
            return
        self.last_beat_ok = time.monotonic()
        gone = [a for a in (self.inflight.get(raw.decode()) for raw in lost) if a is not None]
        if gone:
            try:
                pipe = self.w.client.pipeline(transaction=False)
                for a in gone:
                    pipe.hget(self.keys.job(a.id), "state")
                states = await pipe.execute()
            except redis.RedisError:
                states = [None] * len(gone)
            for a, state in zip(gone, states, strict=True):
                self._lose(a, "it was cancelled" if state == b"cancelled" else "its lease was taken over")

    def _lose(self, a: _Active, why: str) -> None:
        if a.lost:
            return
        a.lost = True
        a.ctx._cancelled = True
        log.warning("job %s/%s: stopping, %s", self.spec.name, a.id, why)
        if a.task is not None and self.execution != "thread":
            a.task.cancel()

    async def reap(self) -> None:
        s = self.w.settings
        k = self.keys
        try:
            await self.w.scripts.reap(
                keys=k.reap_keys(),
                args=[max(int(s.stall_interval * 1000), 1), 1000, self.spec.max_stalls, k.job_prefix,
                      s.events_maxlen])
        except redis.RedisError as exc:
            log.warning("queue %s: stalled-job check failed (%s)", self.spec.name, type(exc).__name__)

    def health(self) -> dict[str, Any]:
        return {
            "queue": self.spec.name, "execution": self.execution, "concurrency": self.concurrency,
            "active": len(self.inflight), "processed": self.processed, "failures": self.failures,
            "busy_seconds": round(self.busy_seconds, 3),
            "avg_seconds": round(self.busy_seconds / self.processed, 4) if self.processed else None,
            "fetch_age": round(time.monotonic() - self.last_tick, 3),
        }

    def close(self) -> None:
        if self.threads is not None:
            self.threads.shutdown(wait=False, cancel_futures=True)
        if self.procs is not None:
            self.procs.stop()
            self.procs.join(timeout=5)


class _ChildFailure(Exception):
    def __init__(self, kind: str, code: str, message: str, stack: str, delay: float = 0.0,
                 key: str | None = None) -> None:
        super().__init__(message)
        self.kind, self.code, self.message, self.stack, self.delay = kind, code, message, stack, delay
        self.key = key


def _flow_meta(pipe: Any, meta: str, spec: QueueSpec) -> None:
    """Publish the queue's limits where the claim scripts read them (the last worker to announce wins)."""
    fields = {"rate": rate_text(spec.rate_limit) if spec.rate_limit else None,
              "gconc": spec.group_concurrency, "grate": rate_text(spec.group_rate_limit) if spec.group_rate_limit
              else None}
    if any(v is not None for v in fields.values()):
        pipe.hset(meta, mapping={k: v for k, v in fields.items() if v is not None})
    gone = [k for k, v in fields.items() if v is None]
    if gone:
        pipe.hdel(meta, *gone)


def _make_loader(payload: type | None, secrets: dict[str, Any] | None) -> Any:
    def load(value: Any) -> Any:
        if secrets and isinstance(value, dict):
            value = {**value, **secrets}
        return structure_payload(value, payload) if payload is not None else value

    return load


def _call_sync(spec: QueueSpec, ctx: JobContext) -> Any:
    if spec.payload is not None and not spec.lazy_payload:
        ctx.data  # noqa: B018  (validate before the handler runs)
    return spec.handler(ctx)


async def _cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel and await ``tasks``. A cancellation can be swallowed inside a library (an
    ``asyncio.timeout`` firing at the same moment, CPython < 3.12), so cancel twice, with bounds;
    the loops also check ``Worker._closed``."""
    for t in tasks:
        t.cancel()
    _done, pending = await asyncio.wait(tasks, timeout=3) if tasks else (set(), set())
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending, timeout=3)


async def _quiet(coro: Any) -> None:
    try:
        await coro
    except redis.RedisError as exc:
        log.warning("progress write failed: %s", type(exc).__name__)


class Worker:
    """Serve ``specs`` until :meth:`stop` (or SIGTERM/SIGINT with :meth:`run_forever`).

    :param specs: the queues to serve.
    :param settings: defaults to :meth:`Settings.from_env`.
    :param hooks: a :class:`jobq.plugins.PluginHost` whose lifecycle hooks are called.
    """

    def __init__(self, specs: list[QueueSpec], settings: Settings | None = None, *, hooks: Any = None,
                 worker_id: str | None = None, block_timeout: float = 5.0,
                 presence_interval: float = 5.0) -> None:
        if not specs:
            raise ValueError("a worker needs at least one queue")
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"queues named twice: {names}")
        self.settings = settings or Settings.from_env()
        self.specs = specs
        self.hooks = hooks
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        self.block_timeout = block_timeout
        self.presence_interval = presence_interval
        self.stopping = False
        self._closed = False
        self.started_at = time.time()
        self._stop_event: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.runners: list[QueueRunner] = []
        self._storage: Any = None
        self._handler_redis: Any = None
        self._handler_redis_sync: Any = None
        self.presence_extra: dict[str, Any] = {}  # more fields for the presence record (prefork's slot)
        self._dep_tasks: set[asyncio.Task[None]] = set()
        self.ready = False
        self.scheduler: Scheduler | None = None

    @property
    def storage(self) -> Any:
        if self._storage is None:
            from .storage import Storage

            self._storage = Storage.from_settings(self.settings)
        return self._storage

    def handler_redis(self) -> Any:
        """``job.redis`` of async handlers: one auto-pipelining client per worker, made on first use."""
        if self._handler_redis is None:
            from .autopipeline import handler_client

            self._handler_redis = handler_client(self.settings)
        return self._handler_redis

    def handler_redis_sync(self) -> Any:
        """``job.redis`` of thread handlers: one pooled client per worker, made on first use."""
        if self._handler_redis_sync is None:
            with _CLIENT_LOCK:  # handler threads may ask at once
                if self._handler_redis_sync is None:
                    self._handler_redis_sync = make_client(self.settings)
        return self._handler_redis_sync

    async def call_with_retry(self, script: Any, keys: list[str], args: list[Any], attempts: int = 8) -> Any:
        delay = 0.05
        for i in range(attempts):
            try:
                return await script(keys=keys, args=args)
            except redis.RedisError as exc:
                if i == attempts - 1:
                    log.error("giving up on a Redis write after %d tries: %s", attempts, type(exc).__name__)
                    return None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        return None

    def stop(self) -> None:
        """Ask for a graceful stop; safe to call from any thread or a signal handler."""
        loop, ev = self.loop, self._stop_event
        if loop is None or ev is None:
            self.stopping = True
            return
        loop.call_soon_threadsafe(ev.set)

    async def run(self) -> None:
        """Serve until stopped, then drain within ``settings.shutdown_grace`` and hand back the rest."""
        self.loop = asyncio.get_running_loop()
        tracing.setup()
        self._stop_event = asyncio.Event()
        if self.stopping:
            self._stop_event.set()
        self.stopping = False
        s = self.settings
        self.client = make_client(s, asyncio=True)
        self.blocking = make_client(s, asyncio=True, socket_timeout=self.block_timeout + s.socket_timeout)
        self.scripts = Scripts(self.client)
        await self._check_redis()
        self.runners = [QueueRunner(self, spec) for spec in self.specs]
        background: list[asyncio.Task[Any]] = []
        pumps: list[asyncio.Task[Any]] = []
        try:
            await self._announce_at_start()
            for r in self.runners:
                pumps.append(asyncio.create_task(r.pump(), name=f"jobq-pump-{r.spec.name}"))
                background.append(asyncio.create_task(r.listen(), name=f"jobq-listen-{r.spec.name}"))
            background.append(asyncio.create_task(self._heartbeats(), name="jobq-heartbeat"))
            background.append(asyncio.create_task(self._presence(), name="jobq-presence"))
            background.append(asyncio.create_task(self._reaper(), name="jobq-reaper"))
            self.scheduler = Scheduler(self)
            background.append(asyncio.create_task(self.scheduler.run(), name="jobq-scheduler"))
            self.ready = True
            if self.hooks is not None:
                self.hooks.worker_started(worker_id=self.id, queues=[x.name for x in self.specs],
                                          specs=list(self.specs))
            log.info("worker %s serving %s", self.id, ", ".join(x.name for x in self.specs))
            stop_wait = asyncio.create_task(self._stop_event.wait())
            background.append(stop_wait)
            await asyncio.wait([stop_wait, *pumps], return_when=asyncio.FIRST_COMPLETED)
            crashed = [p.exception() for p in pumps if p.done() and not p.cancelled() and p.exception()]
            for exc in crashed:
                log.error("queue pump crashed; stopping the worker", exc_info=exc)
            await self._drain(pumps)
            if self.hooks is not None:
                self.hooks.worker_stopped(worker_id=self.id, queues=[x.name for x in self.specs])
            if crashed:  # exit non-zero so a supervisor restarts the process
                raise RuntimeError(f"a queue pump crashed: {crashed[0]!r}") from crashed[0]
        finally:
            self.ready = False
            self._closed = True
            await _cancel_all(background + pumps)
            for r in self.runners:
                await r.withdraw()
            await self._withdraw()
            for r in self.runners:
                r.close()
            await self.client.aclose()
            await self.blocking.aclose()
            if self._handler_redis is not None:
                await self._handler_redis.aclose()
                self._handler_redis = None
            if self._handler_redis_sync is not None:
                self._handler_redis_sync.close()
                self._handler_redis_sync = None

    async def _drain(self, pumps: list[asyncio.Task[Any]]) -> None:
        self.stopping = True
        if self.hooks is not None:
            self.hooks.worker_stopping(worker_id=self.id, queues=[x.name for x in self.specs])
        for r in self.runners:
            r.want_marker.set()
            r.kick.set()
        grace = self.settings.shutdown_grace
        _done, pending = await asyncio.wait(pumps, timeout=grace) if pumps else (set(), set())
        if pending:
            left = [a for r in self.runners for a in r.inflight.values()]
            log.warning("shutdown grace of %.1fs over: handing back %d active job(s)", grace, len(left))
            for r in self.runners:
                for a in list(r.inflight.values()):
                    if a.task is not None:
                        a.task.cancel()
                    if r.execution == "thread":
                        a.lost = True
                        await r._release(a)
            await asyncio.wait(pending, timeout=5)

    async def _check_redis(self) -> None:
        try:
            policy = await self.client.config_get("maxmemory-policy")
            value = policy.get("maxmemory-policy", b"")
            value = value.decode() if isinstance(value, bytes) else value
            if value and value != "noeviction":
                log.warning("Redis maxmemory-policy is %r: Redis may evict queue keys and lose jobs; "
                            "set it to 'noeviction'", value)
        except redis.ResponseError:
            pass  # CONFIG not allowed for this ACL user

    async def _announce_at_start(self) -> None:
        """Announce, but serve even if Redis refuses: at ``maxmemory`` only workers free memory, so a
        worker that exited here would leave a supervisor restarting it forever. ``_presence`` retries."""
        try:
            await self._announce()
        except redis.OutOfMemoryError:
            log.warning("worker %s cannot announce itself: Redis is at its maxmemory and refuses writes; "
                        "serving anyway (draining frees memory), retrying every %.0fs", self.id, self.presence_interval)
        except redis.RedisError as exc:
            log.warning("worker %s cannot announce itself (%s); serving anyway, retrying every %.0fs",
                        self.id, type(exc).__name__, self.presence_interval)

    async def _announce(self) -> None:
        s = self.settings
        now = await self.client.time()
        now_ms = int(now[0]) * 1000 + int(now[1]) // 1000
        info = {
            "id": self.id, "host": socket.gethostname(), "pid": os.getpid(), "started": self.started_at,
            "queues": [r.health() for r in self.runners], "healthy": self._healthy(), **self.presence_extra,
        }
        pipe = self.client.pipeline(transaction=False)
        pipe.sadd(queues_key(s.prefix), *[x.name for x in self.specs])
        for spec in self.specs:
            pipe.hset(QueueKeys(s.prefix, spec.name).meta, "spec", json.dumps({
                "concurrency": spec.concurrency, "retries": spec.retries, "backoff": spec.backoff,
                "timeout": spec.timeout, "max_stalls": spec.max_stalls}))
            _flow_meta(pipe, QueueKeys(s.prefix, spec.name).meta, spec)
        pipe.zadd(workers_key(s.prefix), {self.id: now_ms})
        pipe.set(worker_key(s.prefix, self.id), json.dumps(info), ex=int(self.presence_interval * 3) + 1)
        await pipe.execute()

    def _healthy(self) -> bool:
        limit = self.block_timeout * 2 + 5
        now = time.monotonic()
        return all(now - r.last_tick < limit or r.concurrency <= len(r.inflight) for r in self.runners)

    async def _withdraw(self) -> None:
        s = self.settings
        try:
            await self.client.zrem(workers_key(s.prefix), self.id)
            await self.client.delete(worker_key(s.prefix, self.id))
        except redis.RedisError:
            pass

    async def _presence(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.presence_interval)
            try:
                await self._announce()
                await self._collect_garbage()
                cutoff = (await self.client.time())[0] * 1000 - 3_600_000
                await self.client.zremrangebyscore(workers_key(self.settings.prefix), "-inf", cutoff)
            except redis.RedisError as exc:
                log.warning("presence update failed: %s", type(exc).__name__)

    async def _collect_garbage(self) -> None:
        for r in self.runners:
            refs = await self.client.lpop(r.keys.gc, 100)
            if refs:
                keys = [x.decode() for x in refs]
                await asyncio.to_thread(lambda ks=keys: [self.storage.delete(k) for k in ks])

    async def _heartbeats(self) -> None:
        # at most a second apart: a cancelled job's handler is stopped within about a second
        interval = max(min(self.settings.lease_seconds / 3, 1.0), 0.05)
        while not self._closed:
            await asyncio.sleep(interval)
            await asyncio.gather(*(r.heartbeat() for r in self.runners))

    async def _reaper(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.settings.stall_interval)
            for r in self.runners:
                await r.reap()
                await self._dependencies(r.spec.name, sweep=True)

    def resolve_dependents(self, queue: str) -> None:
        """Resolve, in the background, the dependents of jobs of ``queue`` that just ended."""
        task = asyncio.get_running_loop().create_task(self._dependencies(queue))
        self._dep_tasks.add(task)
        task.add_done_callback(self._dep_tasks.discard)

    async def _dependencies(self, queue: str, sweep: bool = False) -> None:
        from .dependencies import drain, reconcile
        from .queue import _Ops, _run_async

        ops = _Ops(self.settings, self.specs, strict=False)
        try:
            await _run_async(self.client, self.scripts, drain(ops, queue))
            if sweep:
                await _run_async(self.client, self.scripts, reconcile(ops, queue))
        except redis.RedisError as exc:  # the outbox keeps its entries; the next sweep resolves them
            log.warning("queue %s: resolving dependents failed (%s)", queue, type(exc).__name__)

    def health(self) -> dict[str, Any]:
        return {"id": self.id, "running": self.ready, "healthy": self._healthy(),
                "queues": [r.health() for r in self.runners]}

    def run_forever(self) -> None:
        """Run in this thread with SIGTERM/SIGINT starting a graceful shutdown, on uvloop when it is
        installed (``pip install jobq[speed]``; ``JOBQ_UVLOOP=0`` turns it off)."""

        async def main() -> None:
            loop = asyncio.get_running_loop()
            self.loop = loop
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
            await self.run()

        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(main())


def loop_factory() -> Any:
    """uvloop's loop factory when uvloop is installed and not turned off, else ``None`` (asyncio's)."""
    if os.environ.get("JOBQ_UVLOOP", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
