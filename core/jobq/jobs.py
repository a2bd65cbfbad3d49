"""The job record as callers see it (``get_job``), read from the job's Redis hash."""

from __future__ import annotations

import json
from typing import Any, Literal

import attrs

JobState = Literal["waiting", "delayed", "active", "completed", "failed", "paused", "blocked", "cancelled"]
STATES: tuple[str, ...] = ("waiting", "delayed", "active", "completed", "failed", "paused", "blocked", "cancelled")
REDACTED = "[redacted]"


@attrs.frozen(kw_only=True)
class JobOptions:
    """Per-job overrides of the queue's defaults; ``None`` means "the queue's"."""

    retries: int | None = None
    backoff: float | None = None
    timeout: float | None = None
    delay: float = 0.0
    priority: int = 0


@attrs.frozen(kw_only=True)
class Failure:
    code: str
    message: str
    stack: str = ""


@attrs.frozen(kw_only=True)
class Job:
    """One job. Timestamps are Unix seconds (Redis time); ``attempts`` counts starts."""

    id: str
    queue: str
    name: str = ""
    data: Any = None
    options: JobOptions = JobOptions()
    state: JobState = "waiting"
    progress: Any = None
    attempts: int = 0
    failed_attempts: int = 0
    stalls: int = 0
    result: Any = None
    failure: Failure | None = None
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    payload_ref: str | None = None
    group: str | None = None
    depends_on: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_hash(cls, queue: str, job_id: str, h: dict[bytes, bytes], *, paused: bool = False) -> Job:
        g = {k.decode(): v.decode(errors="replace") for k, v in h.items()}
        state = g.get("state", "waiting")
        if state == "waiting" and paused:
            state = "paused"
        failure = None
        if g.get("code"):
            failure = Failure(code=g["code"], message=g.get("error", ""), stack=g.get("stack", ""))
        opts = json.loads(g["opts"]) if g.get("opts") else {}
        deps = tuple((q, i) for q, i in opts.pop("deps", ()))
        opts.pop("gate", None)
        opts.pop("tp", None)
        return cls(
            id=job_id,
            queue=queue,
            name=g.get("name", ""),
            data=_loads(g.get("data")),
            options=JobOptions(priority=int(float(g.get("prio", 0))), **opts),
            state=state,  # type: ignore[arg-type]
            progress=_loads(g.get("progress")),
            attempts=int(g.get("att", 0)),
            failed_attempts=int(g.get("fails", 0)),
            stalls=int(g.get("stalls", 0)),
            result=_loads(g.get("result")),
            failure=failure,
            created_at=_sec(g.get("created")),
            started_at=_sec(g.get("started")),
            finished_at=_sec(g.get("finished")),
            payload_ref=g.get("ref") or None,
            group=g.get("grp") or None,
            depends_on=deps,
        )


def _loads(raw: str | None) -> Any:
    """Decode a stored JSON field; a corrupt one is shown as its text, never raised on a read."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _sec(ms: str | None) -> float | None:
    return int(ms) / 1000 if ms else None


def job_to_dict(job: Job) -> dict[str, Any]:
    """A JSON-ready dict of a job (``jobq job --json``, the API)."""
    import cattrs.preconf.json

    return cattrs.preconf.json.make_converter(omit_if_default=False).unstructure(job)
