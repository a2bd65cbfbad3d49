"""The ``replays`` handler: parse, validate and mask → chunk → gzip → upload → manifest → record.

Two phases, so bad input never leaves half a replay in storage: the payload is streamed once
(size cap, nesting guard, per-event validation, re-encoding into a spool), then the spooled
events are chunked, compressed and uploaded one chunk at a time. Chunks are written first and
the manifest last; a retry rewrites the same keys and removes chunk files a longer earlier run
left behind, so a player never finds a manifest pointing at chunks that do not exist.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from jobq import JobContext, JobFailed
from jobq.config import Settings
from jobq.storage import Storage, UnsafeKey, safe_part
from jobq_bugreports.store import ProjectMismatch, ReportStore, check_id

from . import settings as replay_settings
from .chunking import count_chunks, iter_chunks
from .errors import (
    ERR_PAYLOAD_TOO_LARGE,
    ERR_REPORT_STORE,
    ERR_TOO_MANY_CHUNKS,
    ReplayRejected,
    StorageWriteFailed,
)
from .events import check_count, check_event, encode_event
from .manifest import (
    ManifestWriter,
    chunk_key,
    manifest_key,
    replay_folder,
    stale_chunk_keys,
)
from .masking import Masker, parse_privacy
from .reader import ReplayReader
from .spool import EventSpool

log = logging.getLogger(__name__)

READ_SHARE = 70  # percent of the progress bar for reading: parsing dominates the run time
UPLOAD_SHARE = 25
RECORD_KEY = "replay"

_lock = threading.Lock()
_storages: dict[tuple[str | None, ...], Storage] = {}
_stores: dict[tuple[str | None, ...], Any] = {}


def process_replay(job: JobContext) -> dict[str, Any]:
    """Turn one replay payload into chunk files and a manifest; returns the replay's URLs and figures."""
    cfg = replay_settings.current()
    started = time.monotonic()
    progress = _Progress(job)
    reader = ReplayReader(job.open_payload, max_bytes=cfg.max_bytes, max_depth=cfg.max_depth,
                          on_progress=lambda fraction: progress.update(READ_SHARE * fraction))
    storage = current_storage()
    with EventSpool(cfg.spool_memory_bytes) as spool:
        try:
            masker = _read(reader, spool, cfg.max_events)
            _check_chunk_count(spool, cfg)
        except ReplayRejected as exc:
            _record_refusal(reader.ids, job, exc)
            raise
        bug_report_id, project_id = reader.ids["bugReportId"], reader.ids["projectId"]
        folder = replay_folder(project_id, bug_report_id)
        _check_owner(bug_report_id, project_id)
        total = len(spool)
        with ManifestWriter(bug_report_id=bug_report_id, project_id=project_id, window_ms=cfg.window_ms,
                            idle_ms=cfg.idle_ms, max_chunk_bytes=cfg.max_chunk_bytes,
                            gzip_level=cfg.gzip_level) as writer:
            for chunk in iter_chunks(spool.ordered(), window_ms=cfg.window_ms, idle_ms=cfg.idle_ms,
                                     max_chunk_bytes=cfg.max_chunk_bytes, level=cfg.gzip_level):
                _put(storage, chunk_key(folder, chunk), chunk.data)
                writer.add(chunk)
                progress.update(READ_SHARE + UPLOAD_SHARE * writer.event_count / total)
            out_of_order = spool.out_of_order
            raw_size = spool.raw_size
            manifest = writer.finish(out_of_order=out_of_order, masking=masker.counts)
            metadata_key = manifest_key(folder)
            _put_file(storage, metadata_key, writer.path)
    _remove_stale_chunks(storage, folder, manifest["chunkCount"], job)
    result = {
        "replayUrl": storage.url(folder) + "/",
        "metadataUrl": storage.url(metadata_key),
        "chunkCount": manifest["chunkCount"],
        "totalSize": manifest["totalSize"],
        "eventCount": manifest["eventCount"],
    }
    _record(bug_report_id, project_id, {
        "status": "ready",
        **result,
        "durationMs": manifest["durationMs"],
        "reordered": manifest["reordered"],
        "outOfOrderEvents": out_of_order,
        "jobId": job.id,
        "processedAt": manifest["createdAt"],
    })
    progress.update(100)
    log.info("replay job %s: %d events, %d out of order -> %d chunks, %d -> %d bytes in %.3f s",
             job.id, manifest["eventCount"], out_of_order, manifest["chunkCount"], raw_size,
             manifest["totalSize"], time.monotonic() - started)
    return result


def _read(reader: ReplayReader, spool: EventSpool, max_events: int) -> Masker:
    """Phase one: the whole payload validated, masked and spooled; nothing written anywhere yet."""
    try:
        for name, value in reader.start().items():
            _check_id(name, value)  # fail fast, before reading megabytes
        masker = Masker(parse_privacy(reader.privacy))
        append = spool.append
        mask = masker.mask
        for index, event in enumerate(reader.events()):
            if index >= max_events:
                raise ReplayRejected(ERR_PAYLOAD_TOO_LARGE,
                                     f"replayData has more than {max_events} events (REPLAY_MAX_EVENTS)")
            timestamp = check_event(event, index)
            mask(event)  # before the event reaches the spool's file: typed text is never written
            append(timestamp, encode_event(event, index))
    finally:
        reader.close()
    check_count(len(spool), max_events)
    for name, value in reader.ids.items():
        _check_id(name, value)
    return masker


def _check_chunk_count(spool: EventSpool, cfg: replay_settings.ReplaySettings) -> None:
    """Refuse, before writing anything, a replay that would be stored as more than ``max_chunks`` chunks."""
    count = count_chunks(spool.ordered_sizes(), window_ms=cfg.window_ms, idle_ms=cfg.idle_ms,
                         max_chunk_bytes=cfg.max_chunk_bytes)
    if count > cfg.max_chunks:
        raise ReplayRejected(ERR_TOO_MANY_CHUNKS,
                             f"replayData would make {count} chunks, over REPLAY_MAX_CHUNKS={cfg.max_chunks}")


def _record_refusal(ids: dict[str, str], job: JobContext, exc: ReplayRejected) -> None:
    """Tell the bug report why its replay was refused; best effort, the job fails with the input's code anyway."""
    try:
        bug_report_id, project_id = ids["bugReportId"], ids["projectId"]
        for name, value in ids.items():
            _check_id(name, value)
        _record(bug_report_id, project_id, {"status": "failed", "code": exc.code, "message": str(exc),
                                            "jobId": job.id})
    except Exception as error:  # no ids, unsafe ids, another project's report, store down
        log.info("replay job %s: refusal not recorded on the bug report (%s)", job.id, type(error).__name__)


def _check_id(name: str, value: str) -> None:
    safe_part(value)  # UnsafeKey, ERR_UNSAFE_ID: "../x", "a/b", NUL...
    check_id(name, value)  # InvalidReport, also ERR_UNSAFE_ID: not a bug-report id ("a.b", "_x")


def _check_owner(bug_report_id: str, project_id: str) -> None:
    """Refuse a replay naming another project's report before writing anything (record would refuse it last)."""
    store = current_report_store()
    try:
        report = store.get_report(bug_report_id)
    except store.transient_errors as exc:
        raise JobFailed(f"could not read bug report {bug_report_id} ({type(exc).__name__})",
                        code=ERR_REPORT_STORE) from exc
    if report is not None and report["projectId"] != project_id:
        raise ProjectMismatch("projectId", f"report {bug_report_id} belongs to another project")


def _put(storage: Storage, key: str, data: bytes) -> None:
    try:
        storage.put(key, data)
    except UnsafeKey:
        raise
    except Exception as exc:  # any backend error: the write is retried with the whole job
        raise StorageWriteFailed(f"could not write {key} ({type(exc).__name__})") from exc


def _put_file(storage: Storage, key: str, path: str) -> None:
    try:
        storage.put_file(key, path, content_type="application/json")
    except UnsafeKey:
        raise
    except Exception as exc:
        raise StorageWriteFailed(f"could not write {key} ({type(exc).__name__})") from exc


def _remove_stale_chunks(storage: Storage, folder: str, chunk_count: int, job: JobContext) -> None:
    """Delete chunk files of an earlier, longer run; they are outside the manifest, so failing here is only logged."""
    try:
        for key in stale_chunk_keys(storage.list(folder), folder, chunk_count):
            storage.delete(key)
    except Exception as exc:
        log.warning("replay job %s: could not remove old chunk files under %s (%s)", job.id, folder,
                    type(exc).__name__)


def _record(bug_report_id: str, project_id: str, value: dict[str, Any]) -> None:
    store = current_report_store()
    try:
        store.record(bug_report_id, project_id, RECORD_KEY, value)
    except store.transient_errors as exc:
        raise JobFailed(f"could not record the replay on bug report {bug_report_id} ({type(exc).__name__})",
                        code=ERR_REPORT_STORE) from exc


class _Progress:
    """Reports whole percents, at most one call per 5 %, so a long replay makes ~20 progress writes."""

    __slots__ = ("_job", "_last")

    def __init__(self, job: JobContext) -> None:
        self._job = job
        self._last = 0

    def update(self, percent: float) -> None:
        value = min(100, int(percent))
        if value >= self._last + 5 or (value == 100 and self._last < 100):
            self._last = value
            self._job.progress(value)


def current_storage() -> Storage:
    """The storage of ``STORAGE_URL``/``STORAGE_PUBLIC_URL``, one per process and per setting."""
    key = (os.environ.get("STORAGE_URL"), os.environ.get("STORAGE_PUBLIC_URL"))
    with _lock:
        storage = _storages.get(key)
        if storage is None:
            storage = _storages[key] = Storage.from_settings(Settings.from_env())
        return storage


def current_report_store() -> Any:
    """The bug-report store of ``DATABASE_URL``, one per process and per setting (it is thread-safe)."""
    key = tuple(os.environ.get(n) for n in ("DATABASE_URL", "JOBQ_REPORTS_TABLE", "JOBQ_REPORTS_POOL_SIZE"))
    with _lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = ReportStore.from_env()
        return store


def close_cached_clients() -> None:
    """Close and forget the cached bug-report stores and storages (tests, or a worker shutting down)."""
    with _lock:
        stores = list(_stores.values())
        _stores.clear()
        _storages.clear()
    for store in stores:
        store.close()
