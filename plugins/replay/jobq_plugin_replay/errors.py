"""Reason codes of the ``replays`` queue and the failures that carry them.

Bad input fails at once (a retry would read the same bytes); storage and database trouble is
retried. Messages name the problem and the event index, never quote the payload: replays record
what users typed and saw.
"""

from __future__ import annotations

from jobq import JobFailed, UnrecoverableError

ERR_INVALID_REPLAY = "ERR_INVALID_REPLAY"
ERR_INVALID_TIMESTAMP = "ERR_INVALID_TIMESTAMP"
ERR_EMPTY_REPLAY = "ERR_EMPTY_REPLAY"
ERR_REPLAY_TOO_SHORT = "ERR_REPLAY_TOO_SHORT"
ERR_PAYLOAD_TOO_LARGE = "ERR_PAYLOAD_TOO_LARGE"
ERR_NESTING_TOO_DEEP = "ERR_NESTING_TOO_DEEP"
ERR_TOO_MANY_CHUNKS = "ERR_TOO_MANY_CHUNKS"
ERR_STORAGE = "ERR_STORAGE"
ERR_REPORT_STORE = "ERR_REPORT_STORE"


class ReplayRejected(UnrecoverableError, ValueError):
    """The replay cannot be processed as sent.

    Also a ``ValueError``, so the payload class's validators raise it at enqueue and the core
    turns it into ``InvalidPayload`` with the same words the handler would use.
    """

    code = ERR_INVALID_REPLAY

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


class StorageWriteFailed(JobFailed):
    """Writing a chunk or the manifest failed; retried with backoff (a retry rewrites the same keys)."""

    code = ERR_STORAGE
