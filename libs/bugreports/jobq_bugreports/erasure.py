"""Erase a bug report and everything it produced (data-protection requests).

Order matters, so that a failure halfway leaves a report that can be erased again, never one that
looks erased while its data remains:

1. the report is marked ``metadata.erasure = {"state": "pending"}`` (the retryable record);
2. its jobs, in every queue, are cancelled (a running handler is stopped) and removed, with
   their payloads, results and failure records;
3. its stored objects are deleted: the folders ``<root>/<project>/<report>`` for each root of
   ``JOBQ_ERASE_FOLDERS`` (the screenshot and replay plugins' outputs) and the jobs' claim-checked
   payloads; then listed again, and any left raises :class:`ErasureIncomplete`;
4. only then the row goes, and with it the delivery records kept in its metadata.

Issues already filed on external trackers cannot be deleted from here; the answer lists them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from typing import Any

import redis
from jobq import JobNotFound
from jobq.storage import safe_key

from .store import ReportStore, utcnow

log = logging.getLogger(__name__)
ERASE_FOLDERS = "JOBQ_ERASE_FOLDERS"
DEFAULT_FOLDERS = ("screenshots", "replays")
SETTLE_SECONDS = 2.0  # a cancelled handler stops within a heartbeat (≤ 1 s); it may still be writing until then
RUNNING = ("active",)
ENDED = ("completed", "failed", "cancelled")


class ErasureIncomplete(Exception):
    """Something could not be deleted; the report keeps its pending-erasure mark. Retry."""


def folders(project_id: str, report_id: str, env: Mapping[str, str] | None = None) -> list[str]:
    roots = (os.environ if env is None else env).get(ERASE_FOLDERS, "")
    names = [r.strip() for r in roots.split(",") if r.strip()] or list(DEFAULT_FOLDERS)
    return [safe_key(root, project_id, report_id) for root in names]


def _jobs(entry: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for queue, value in entry.items():
        if isinstance(value, Mapping):
            for job_id in value.values():
                yield queue, job_id
        elif isinstance(value, str):
            yield queue, value


def _external_issues(metadata: Mapping[str, Any]) -> list[dict[str, str]]:
    out = []
    for platform, rec in (metadata.get("integrations") or {}).items():
        if isinstance(rec, Mapping) and rec.get("externalUrl"):
            out.append({"platform": platform, "externalId": str(rec.get("externalId", "")),
                        "externalUrl": str(rec["externalUrl"])})
    return out


def erase_report(store: ReportStore, manager: Any, storage: Any, report_id: str,
                 project_id: str | None = None) -> dict[str, Any] | None:
    """Erase one report; ``None`` when it does not exist (or belongs to another project).

    :raises ErasureIncomplete: storage or Redis failed; the report stays, marked, for a retry.
    """
    report = store.get_report(report_id)
    if report is None or (project_id is not None and report["projectId"] != project_id):
        return None
    project = report["projectId"]
    store.record(report_id, project, "erasure", {"state": "pending", "requestedAt": utcnow()})
    refs: list[str] = []
    stopped = 0
    jobs = list(_jobs(report.get("jobs") or {}))
    try:
        for queue, job_id in jobs:
            job = manager.get_job(queue, job_id)
            if job is None:
                continue
            if job.payload_ref:
                refs.append(job.payload_ref)
            if job.state not in ENDED:
                try:
                    stopped += manager.cancel_job(queue, job_id, "the report was erased") in RUNNING
                except JobNotFound:
                    pass
            manager.remove_job(queue, job_id)
    except redis.RedisError as exc:
        raise ErasureIncomplete(f"could not remove the report's jobs ({type(exc).__name__})") from None
    places = folders(project, report_id)
    try:
        deleted = _delete(storage, places, refs)
        if stopped:  # a handler that was running may have written once more before it stopped
            time.sleep(SETTLE_SECONDS)
            deleted += _delete(storage, places, refs)
        left = [key for place in places for key in storage.list(place)]
    except OSError as exc:
        raise ErasureIncomplete(f"could not delete the report's stored objects ({type(exc).__name__})") from None
    if left:
        raise ErasureIncomplete(f"{len(left)} stored object(s) of the report remain")
    store.delete_report(report_id)
    log.info("report %s of project %s erased: %d job(s), %d object(s)", report_id, project, len(jobs), deleted)
    return {"id": report_id, "projectId": project, "erased": True, "jobs": len(jobs), "objects": deleted,
            "externalIssues": _external_issues(report.get("metadata") or {})}


def _delete(storage: Any, places: list[str], refs: list[str]) -> int:
    n = 0
    for place in places:
        for key in storage.list(place):
            storage.delete(key)
            n += 1
        storage.delete(place)
    for ref in refs:
        if storage.exists(ref):
            storage.delete(ref)
            n += 1
    return n
