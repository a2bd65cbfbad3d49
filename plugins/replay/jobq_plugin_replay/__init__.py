"""jobq plugin: the ``replays`` queue (rrweb session replays cut into gzip'd 30-second chunks)."""

from jobq import QueueSpec, hookimpl

from .payload import ReplayJob
from .process import process_replay
from .settings import current

__all__ = ["ReplayJob", "jobq_queues", "process_replay"]


@hookimpl
def jobq_queues() -> list[QueueSpec]:
    return [QueueSpec(
        name="replays", handler=process_replay, payload=ReplayJob, concurrency=3, retries=3, timeout=300,
        execution="process", lazy_payload=True, max_payload_bytes=current().max_bytes,
        description="rrweb session replay -> gzip'd 30-second chunks + metadata.json manifest",
        reason_codes=("ERR_EMPTY_REPLAY", "ERR_INVALID_REPLAY", "ERR_INVALID_TIMESTAMP", "ERR_NESTING_TOO_DEEP",
                      "ERR_PAYLOAD_TOO_LARGE", "ERR_REPLAY_TOO_SHORT", "ERR_REPORT_STORE", "ERR_STORAGE"),
    )]
