"""``QueueSpec``: what a plugin declares about one queue it serves."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

import attrs

from .errors import InvalidOptions
from .schedules import Schedule

Execution = Literal["auto", "async", "thread", "process"]
QUEUE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _check_rate(_inst: Any, attr: Any, value: tuple[int, float] | None) -> None:
    if value is None:
        return
    ok = isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], int) and value[0] >= 1 \
        and isinstance(value[1], int | float) and 0.001 <= value[1] <= 86400 * 7
    if not ok:
        raise InvalidOptions(f"{attr.name} must be (max_jobs >= 1, per_seconds in [0.001, 604800]), got {value!r}")


def rate_text(value: tuple[int, float]) -> str:
    """A rate limit as the claim script reads it from the queue's meta hash: ``<max>/<window ms>``."""
    return f"{value[0]}/{max(1, round(value[1] * 1000))}"


def _check_name(_inst: Any, _attr: Any, value: str) -> None:
    if not QUEUE_NAME.fullmatch(value):
        raise InvalidOptions(f"queue name {value!r} must match {QUEUE_NAME.pattern}")


def _check_schedules(_inst: Any, _attr: Any, value: tuple[Any, ...]) -> None:
    if not all(isinstance(s, Schedule) for s in value):
        raise InvalidOptions("QueueSpec.schedules takes jobq.Schedule objects")
    names = [s.name for s in value]
    if len(set(names)) != len(names):
        raise InvalidOptions(f"schedule names repeat: {names}")
    for s in value:
        s.check_no_secrets(_inst.secret_fields)


@attrs.frozen(kw_only=True)
class QueueSpec:
    """One queue, its handler and its defaults.

    :param name: the queue name (``[A-Za-z0-9_.-]{1,64}``).
    :param handler: ``def work(job)`` or ``async def work(job)``; returns a JSON-serialisable result.
    :param payload: an attrs class; job data is structured and validated with cattrs at
        enqueue and again before the handler runs (``job.data`` is then an instance).
    :param concurrency: jobs run at once by one worker process.
    :param retries: retries after the first try (3 → at most 4 starts for errors).
    :param backoff: first retry delay in seconds; doubles each retry (1 s, 2 s, 4 s).
    :param backoff_jitter: the share of each retry delay drawn at random, 0 (default: the exact
        schedule) to 1 ("full jitter": uniform between 0 and the delay), so jobs that failed
        together do not all retry together.
    :param timeout: seconds an attempt may run; over it the attempt fails ``ERR_TIMEOUT``.
    :param execution: ``async`` for coroutines, ``thread`` for blocking code, ``process`` for
        CPU-bound code (keeps heartbeats flowing and lets a timeout really kill the work);
        ``auto`` picks ``async`` for coroutine functions, else ``thread``.
    :param max_stalls: lease expiries tolerated before the job fails ``ERR_STALLED``.
    :param max_deferrals: ``Retry`` deferrals tolerated before the job fails.
    :param secret_fields: top-level payload keys holding credentials: stored apart, removed
        from Redis when the job ends, redacted in every record, log and event.
    :param process_max_tasks: with ``execution="process"``, jobs a handler process runs before a
        fresh one replaces it, so memory that native code leaks or keeps stays bounded; each
        replacement costs a process start and the handler's imports (about a second). ``None``:
        never replaced.
    :param lazy_payload: skip structuring before the handler; the handler reads the raw
        payload as a stream with ``job.open_payload()`` (large replays).
    :param max_payload_bytes: refuse larger payloads at enqueue (default: ``JOBQ_MAX_PAYLOAD_BYTES``).
    :param reason_codes: the reason codes the handler's errors carry; the failure counters of
        ``jobq_jobs_failed_total``/``jobq_jobs_retried_total`` are exported at 0 for each from
        start (with the engine's own codes), so ``rate()`` sees a burst's first failures.
    :param rate_limit: ``(max_jobs, per_seconds)``: at most that many starts in any rolling window,
        across all workers (``WORKER_<PLUGIN>_RATE_LIMIT=max/seconds`` overrides it).
    :param group_concurrency: at most this many active jobs per group (``add_job(..., group=)``)
        across all workers.
    :param group_rate_limit: ``(max_jobs, per_seconds)`` per group, rolling window.
    :param limit_key: ``limit_key(data) -> str | None``, the limit key of a job enqueued without
        one (see :class:`jobq.RateLimited`).
    :param schedules: :class:`jobq.Schedule` s whose ticks the workers serving this queue enqueue.
    """

    name: str = attrs.field(validator=_check_name)
    handler: Callable[..., Any]
    payload: type | None = None
    concurrency: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    retries: int = attrs.field(default=3, validator=attrs.validators.ge(0))
    backoff: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))
    backoff_jitter: float = attrs.field(default=0.0, validator=[attrs.validators.ge(0), attrs.validators.le(1)])
    timeout: float | None = None
    execution: Execution = "auto"
    max_stalls: int = attrs.field(default=2, validator=attrs.validators.ge(0))
    max_deferrals: int = attrs.field(default=25, validator=attrs.validators.ge(0))
    secret_fields: tuple[str, ...] = ()
    lazy_payload: bool = False
    process_max_tasks: int | None = attrs.field(default=200, validator=attrs.validators.optional(
        attrs.validators.ge(1)))
    max_payload_bytes: int | None = None
    rate_limit: tuple[int, float] | None = attrs.field(default=None, validator=_check_rate)
    group_concurrency: int | None = attrs.field(default=None, validator=attrs.validators.optional(
        attrs.validators.ge(1)))
    group_rate_limit: tuple[int, float] | None = attrs.field(default=None, validator=_check_rate)
    limit_key: Callable[[Any], str | None] | None = None
    description: str = ""
    reason_codes: tuple[str, ...] = ()
    schedules: tuple[Schedule, ...] = attrs.field(default=(), converter=tuple, validator=_check_schedules)
