"""The exception tree.

    JobqError
    ├── ConfigError            bad settings or an unsafe Redis (eviction on)
    ├── EnqueueError           nothing was written
    │   ├── InvalidPayload     names the field (cattrs wording)
    │   ├── InvalidOptions
    │   ├── UnknownQueue
    │   ├── PayloadTooLarge
    │   └── QueueUnavailable   Redis unreachable or not answering
    │       └── QueueFull      Redis at ``maxmemory`` refuses writes
    ├── JobNotFound
    ├── JobNotCompleted        wait_for: the job failed or was cancelled (results.py)
    ├── WaitTimeout            wait_for: not ended in time; also a TimeoutError (results.py)
    ├── ScheduleNotFound       (schedules.py)
    ├── PluginError            a plugin failed to load or two claim one queue
    └── (raised by handlers)
        ├── JobFailed          carries a reason ``code``; ``retryable`` decides a retry
        │   └── UnrecoverableError   never retried
        └── Retry              reschedule at ``delay`` without spending an attempt
            └── RateLimited    the same, and hold every job sharing its limit ``key``
"""

from __future__ import annotations


class JobqError(Exception):
    """Base of every error jobq raises on purpose."""


class ConfigError(JobqError):
    pass


class EnqueueError(JobqError):
    """Enqueue refused; nothing was written to Redis."""


class InvalidPayload(EnqueueError):
    """The payload does not fit the queue's payload class (at enqueue, or in Redis before a run)."""

    code = "ERR_INVALID_PAYLOAD"
    retryable = False

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or [message]


class InvalidOptions(EnqueueError):
    pass


class UnknownQueue(EnqueueError):
    pass


class PayloadTooLarge(EnqueueError):
    pass


class QueueUnavailable(EnqueueError):
    """Redis could not be reached (nothing was written) or did not answer in time.

    After a timeout the enqueue may have landed; enqueue is idempotent per job id, so trying
    again with the same id never makes a second job. ``queue`` names the queue; the Redis error
    is the ``__cause__``.
    """

    def __init__(self, message: str, *, queue: str = "") -> None:
        super().__init__(message)
        self.queue = queue


class QueueFull(QueueUnavailable):
    """Redis is at its ``maxmemory`` and refuses writes (``OOM``): nothing was written.

    Workers keep draining and freeing memory; retry later, or give Redis more memory.
    """


class JobNotFound(JobqError):
    pass


class PluginError(JobqError):
    pass


class JobFailed(JobqError):
    """Raise from a handler to fail an attempt with a reason code.

    :param message: what went wrong, for operators (never put secrets here).
    :param code: the reason code stored on the job and used as a metrics label.
    :param retryable: ``False`` fails the job at once, whatever attempts are left.
    """

    code: str = "ERR_JOB_FAILED"
    retryable: bool = True

    def __init__(self, message: str = "", *, code: str | None = None, retryable: bool | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable


class UnrecoverableError(JobFailed):
    """A failure no retry can fix (bad input, auth refused): the job fails at once."""

    code = "ERR_UNRECOVERABLE"
    retryable = False


class Retry(JobqError):
    """Reschedule the job ``delay`` seconds from now without spending an attempt.

    For rate limits (HTTP 429 with ``Retry-After``) and similar back-pressure. A job
    may defer at most ``QueueSpec.max_deferrals`` times, then it fails ``ERR_DEFERRED_TOO_OFTEN``.
    """

    def __init__(self, delay: float, reason: str = "") -> None:
        super().__init__(reason or f"retry in {delay:.3f}s")
        self.delay = max(0.0, float(delay))


class RateLimited(Retry):
    """A rate limit said "wait": defer this job ``delay`` seconds without spending an attempt.

    With a ``key`` (e.g. ``"github:<token digest>"``) every job of the queue carrying the same
    limit key (``limit_key=`` at enqueue, or ``QueueSpec.limit_key``) is held until the delay ends,
    then released a few at a time, so one 429 slows every worker at once and the window's opening
    brings no stampede.

    :param delay: seconds to wait (``Retry-After``).
    :param key: the limit key to hold, or ``None`` for this job alone.
    """

    def __init__(self, delay: float, key: str | None = None, reason: str = "") -> None:
        super().__init__(delay, reason or f"rate limited{f' on {key}' if key else ''}; retry in {delay:.3f}s")
        self.key = key or None


def reason_code(exc: BaseException) -> str:
    """The reason code of an error: its ``code`` attribute, else its class name."""
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code:
        return code
    return type(exc).__name__


def is_retryable(exc: BaseException) -> bool:
    """An error is retried unless it says otherwise (``retryable = False``)."""
    return bool(getattr(exc, "retryable", True))
