"""``JobContext``: what a handler receives as ``job``."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import IO, Any


class JobContext:
    """One attempt of one job, as its handler sees it.

    ``job.id``, ``job.queue``, ``job.name``, ``job.data`` (an instance of the queue's payload
    class, else the decoded JSON), ``job.attempt`` (1 for the first start), ``job.progress(...)``,
    ``job.settings`` (the worker's :class:`jobq.Settings`: its Redis URL, key prefix, storage),
    ``job.redis`` (a Redis client shared by the worker, see :attr:`redis`),
    ``job.dependency_results`` (``{(queue, id): result}`` of the jobs it was added to wait for),
    ``job.cancelled``.
    """

    __slots__ = (
        "_cancelled",
        "_data",
        "_loader",
        "_opener",
        "_progress",
        "_raw",
        "_redis",
        "attempt",
        "created_at",
        "dependency_results",
        "id",
        "name",
        "queue",
        "settings",
        "token",
    )

    def __init__(self, *, id: str, queue: str, name: str, attempt: int, created_at: float,
                 token: str, raw: bytes | str | None = None, data: Any = None,
                 loader: Callable[[Any], Any] | None = None,
                 opener: Callable[[], IO[bytes]] | None = None,
                 progress: Callable[[Any], None] | None = None, settings: Any = None,
                 redis: Callable[[], Any] | None = None) -> None:
        self.id = id
        self.settings = settings
        self.queue = queue
        self.name = name
        self.attempt = attempt
        self.created_at = created_at
        self.token = token
        self._raw = raw
        self._data = data
        self._loader = loader
        self._opener = opener
        self._progress = progress
        self._redis = redis
        self._cancelled = False
        self.dependency_results: dict[tuple[str, str], Any] = {}

    @property
    def cancelled(self) -> bool:
        """True once the job was cancelled (or this worker lost its lease): a long-running
        thread-mode handler checks it between steps and returns early. Async handlers are
        cancelled outright and process handlers killed, so only thread handlers need it."""
        return self._cancelled

    @property
    def data(self) -> Any:
        """The payload; decoded (and structured into the payload class) on first use."""
        if self._data is None and (self._raw is not None or self._opener is not None):
            try:
                if self._raw is not None:
                    value = json.loads(self._raw)
                else:
                    with self.open_payload() as fh:
                        value = json.load(fh)
            except ValueError as exc:
                from .errors import InvalidPayload

                raise InvalidPayload(f"stored payload is not valid JSON: {exc}") from None
            self._data = self._loader(value) if self._loader else value
        return self._data

    @property
    def redis(self) -> Any:
        """A Redis client on the worker's Redis (``REDIS_URL``), shared by every job of the worker.

        In an ``async`` handler it is a ``redis.asyncio.Redis`` that sends the commands of
        concurrent handlers together, one pipeline per event-loop turn (``await job.redis.incr(k)``);
        in ``thread`` and ``process`` handlers a ``redis.Redis`` with a connection pool. Keep your
        keys out of the ``JOBQ_PREFIX`` namespace; never close the client.
        """
        if self._redis is None:
            raise RuntimeError("job.redis is available in handlers run by a jobq worker")
        return self._redis()

    def open_payload(self) -> IO[bytes]:
        """The raw JSON payload as a binary stream, for handlers that parse it incrementally."""
        if self._opener is not None:
            return self._opener()
        raw = self._raw if self._raw is not None else json.dumps(self._data)
        return io.BytesIO(raw.encode() if isinstance(raw, str) else raw)

    def progress(self, value: int | float | str | dict[str, Any]) -> None:
        """Report progress: a percent (``40``), a step (``"2/5"``) or a small JSON object.

        Never blocks the handler; a write from an attempt that lost its lease is ignored.
        """
        if isinstance(value, bool) or not isinstance(value, int | float | str | dict):
            raise TypeError("progress takes a number, a 'step/total' string or a dict")
        if self._progress is not None:
            self._progress(value)

    def __repr__(self) -> str:
        return f"<JobContext {self.queue}/{self.id} attempt={self.attempt}>"
