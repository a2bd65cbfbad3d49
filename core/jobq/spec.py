"""``QueueSpec``: what a plugin declares about one queue it serves."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

import attrs

from .errors import InvalidOptions

Execution = Literal["auto", "async", "thread", "process"]
QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _check_name(_inst: Any, _attr: Any, value: str) -> None:
    if not QUEUE_NAME.match(value):
        raise InvalidOptions(f"queue name {value!r} must match {QUEUE_NAME.pattern}")


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
    :param timeout: seconds an attempt may run; over it the attempt fails ``ERR_TIMEOUT``.
    :param execution: ``async`` for coroutines, ``thread`` for blocking code, ``process`` for
        CPU-bound code (keeps heartbeats flowing and lets a timeout really kill the work);
        ``auto`` picks ``async`` for coroutine functions, else ``thread``.
    :param max_stalls: lease expiries tolerated before the job fails ``ERR_STALLED``.
    :param max_deferrals: ``Retry`` deferrals tolerated before the job fails.
    :param secret_fields: top-level payload keys holding credentials: stored apart, removed
        from Redis when the job ends, redacted in every record, log and event.
    :param lazy_payload: skip structuring before the handler; the handler reads the raw
        payload as a stream with ``job.open_payload()`` (large replays).
    :param max_payload_bytes: refuse larger payloads at enqueue (default: ``JOBQ_MAX_PAYLOAD_BYTES``).
    :param reason_codes: the reason codes the handler's errors carry; the failure counters of
        ``jobq_jobs_failed_total``/``jobq_jobs_retried_total`` are exported at 0 for each from
        start (with the engine's own codes), so ``rate()`` sees a burst's first failures.
    """

    name: str = attrs.field(validator=_check_name)
    handler: Callable[..., Any]
    payload: type | None = None
    concurrency: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    retries: int = attrs.field(default=3, validator=attrs.validators.ge(0))
    backoff: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))
    timeout: float | None = None
    execution: Execution = "auto"
    max_stalls: int = attrs.field(default=2, validator=attrs.validators.ge(0))
    max_deferrals: int = attrs.field(default=25, validator=attrs.validators.ge(0))
    secret_fields: tuple[str, ...] = ()
    lazy_payload: bool = False
    max_payload_bytes: int | None = None
    description: str = ""
    reason_codes: tuple[str, ...] = ()
