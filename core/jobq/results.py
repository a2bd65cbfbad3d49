"""Waiting on a job's result: ``wait_for`` on the manager, built on the queue's events stream.

The stream's last id is read *before* the job's state, in one round trip, so an event that lands
between the two is read again rather than missed; then ``XREAD BLOCK`` from that id until a
terminal event of the job. Nothing polls: a quiet queue costs one blocked connection.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

from .errors import ConfigError, InvalidOptions, JobNotFound, JobqError

TERMINAL = ("completed", "failed", "cancelled")
_ENDING_EVENTS = {b"completed", b"failed", b"cancelled", b"removed"}
MAX_WAIT = 7 * 86400.0
_READ_COUNT = 1000


class JobNotCompleted(JobqError):
    """``wait_for`` saw the job end without completing (``failed`` or ``cancelled``).

    :ivar job: the job record, with its ``failure``; ``state`` says how it ended.
    """

    def __init__(self, message: str, job: Any) -> None:
        super().__init__(message)
        self.job = job
        self.state: str = job.state


class WaitTimeout(JobqError, TimeoutError):
    """``wait_for`` gave up: the job had not ended within the timeout (it goes on)."""


def _entries(reply: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """``XREAD`` entries of the one stream read (redis-py's RESP2 shape: ``[[name, [(id, fields)]]]``)."""
    if not reply:
        return []
    return [(i, f if isinstance(f, dict) else dict(zip(f[::2], f[1::2], strict=True))) for i, f in reply[0][1]]


class ResultOps:
    """``wait_for`` (mixed into ``_Ops``; same generator shape)."""

    def wait_for(self, queue: str, job_id: str, timeout: float = 60.0) -> Generator[Any, Any, Any]:
        """Wait until job ``job_id`` ends; return it when it completed.

        :param timeout: seconds to wait (the job goes on after a timeout).
        :raises JobNotCompleted: the job failed for good or was cancelled (``.job`` has why).
        :raises WaitTimeout: it had not ended within ``timeout``.
        :raises JobNotFound: no such job, or it was removed while waited on.
        :raises ConfigError: events are off (``JOBQ_EVENTS_MAXLEN=0``): there is nothing to wait on.
        """
        from .jobs import Job
        from .keys import JOB_ID
        from .queue import _Pipe
        from .spec import QUEUE_NAME

        if not isinstance(queue, str) or not QUEUE_NAME.fullmatch(queue):
            raise InvalidOptions(f"invalid queue name {queue!r}")
        if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
            raise InvalidOptions(f"job id {job_id!r} must match {JOB_ID.pattern}")
        settings = self.settings  # type: ignore[attr-defined]
        if settings.events_maxlen <= 0:
            raise ConfigError("wait_for reads the queue's events stream, and JOBQ_EVENTS_MAXLEN=0 turns it off; "
                              "poll get_job instead, or turn events on")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= MAX_WAIT:
            raise InvalidOptions(f"wait_for timeout must be a number of seconds in (0, {MAX_WAIT:.0f}], "
                                 f"got {timeout!r}")
        deadline = time.monotonic() + timeout
        # a blocked read must return before the client's socket timeout fires
        chunk = max(min(settings.socket_timeout / 2, 5.0), 0.05)
        k = self.keys(queue)  # type: ignore[attr-defined]
        last, h = yield _Pipe([("XREVRANGE", k.events, "+", "-", "COUNT", 1), ("HGETALL", k.job(job_id))])
        cursor = last[0][0] if last else b"0-0"
        target = job_id.encode()
        while True:
            if not h:
                raise JobNotFound(f"no job {job_id!r} in queue {queue!r}")
            job = Job.from_hash(queue, job_id, h)
            if job.state == "completed":
                return job
            if job.state in TERMINAL:
                why = f": {job.failure.code}: {job.failure.message}" if job.failure else ""
                raise JobNotCompleted(f"job {queue}/{job_id} {job.state}{why}", job)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeout(f"job {queue}/{job_id} still {job.state} after {timeout}s")
            block_ms = max(int(min(remaining, chunk) * 1000), 1)
            reply = yield ("XREAD", "COUNT", _READ_COUNT, "BLOCK", block_ms, "STREAMS", k.events, cursor)
            rows = _entries(reply)
            ended = False
            for entry_id, fields in rows:
                cursor = entry_id
                if fields.get(b"jobId") == target and fields.get(b"event") in _ENDING_EVENTS:
                    ended = True
            # a read that timed out re-checks the job too: the stream is capped, and a reader that fell
            # more than its length behind on a busy queue could miss the job's event
            if ended or not rows:
                h = yield ("HGETALL", k.job(job_id))
