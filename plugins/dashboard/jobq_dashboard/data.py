"""What each page shows, read from Redis in a few pipelined round trips and always in windows: a page
never reads a whole list or sorted set, whatever the queue's size."""

from __future__ import annotations

import json
import re
import time
from importlib.resources import files
from typing import Any

import attrs
from jobq.history import history_op, summarize
from jobq.jobs import REDACTED, Job
from jobq.queue import AsyncQueueManager, _run_async

PAGE_SIZE = 50
SCAN_LIMIT = 5000  # ids a filtered listing looks at per page, at most
EVENTS_SCAN = 2000  # newest queue events searched for one job's timeline
HISTORY_MINUTES = 60
MAX_SHOWN = 100_000  # characters of data, result or stack shown on a job page
MAX_FIELD_BYTES = 1 << 20  # a bigger data, result or stack field is not even read
_BIG_FIELDS = ("data", "result", "stack")
_LIST_FIELDS = ("name", "state", "created", "finished", "att", "code", "error")
_SECRET_KEY = re.compile(r"(?i)pass(word)?|secret|token|api[-_]?key|authori[sz]ation|credential|private[-_]?key")
STATES = ("waiting", "active", "delayed", "blocked", "failed", "completed")


def fmt_time(seconds: float | None) -> str:
    if not seconds:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f".{int(seconds * 1000) % 1000:03d} UTC"


def redact_data(value: Any, depth: int = 0) -> Any:
    """Hide values whose key names a credential (on top of the queue's ``secret_fields``)."""
    if depth > 32:
        return "…"
    if isinstance(value, dict):
        return {k: REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) and v not in (None, "")
                else redact_data(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_data(v, depth + 1) for v in value]
    return value


def pretty(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + f"\n… ({len(text) - MAX_SHOWN} more characters)"


async def run(m: AsyncQueueManager, op: Any) -> Any:
    return await _run_async(m.redis, m.scripts, op)


async def overview(m: AsyncQueueManager) -> dict[str, Any]:
    queues = await m.list_queues()
    counts = await m.get_queue_stats() if queues else {}
    history = await run(m, history_op(m, queues, HISTORY_MINUTES)) if queues else {}
    workers = await m.list_workers()
    alive: dict[str, int] = {}
    for w in workers:
        if w.get("alive"):
            for q in w.get("queues", []):
                alive[q.get("queue", "")] = alive.get(q.get("queue", ""), 0) + 1
    rows = []
    for q in queues:
        rows.append({"name": q, "counts": counts.get(q, {}), "summary": summarize(history.get(q, [])),
                     "chart": chart(history.get(q, [])), "workers": alive.get(q, 0)})
    return {"queues": rows, "workers_alive": sum(1 for w in workers if w.get("alive")), "minutes": HISTORY_MINUTES}


def chart(rows: list[Any], width: int = 300, height: int = 48) -> dict[str, Any]:
    """Bars of completed (stacked under failed) per minute, as SVG rectangles drawn by the template."""
    top = max([r.completed + r.failed for r in rows] + [1])
    bar = width / max(len(rows), 1)
    bars = []
    for i, r in enumerate(rows):
        hc = round(r.completed / top * height, 1)
        hf = round(r.failed / top * height, 1)
        bars.append({"x": round(i * bar, 1), "w": max(round(bar - 1, 1), 1), "hc": hc, "hf": hf,
                     "yc": round(height - hc, 1), "yf": round(height - hc - hf, 1),
                     "title": f"{time.strftime('%H:%M', time.gmtime(r.timestamp))} UTC: {r.completed} completed, "
                              f"{r.failed} failed, {r.retried} retried, {r.stalled} stalled"})
    return {"width": width, "height": height, "bars": bars, "top": top}


async def _rows(m: AsyncQueueManager, queue: str, ids: list[str]) -> list[list[Any]]:
    if not ids:
        return []
    k = m.keys(queue)
    pipe = m.redis.pipeline(transaction=False)
    for i in ids:
        pipe.hmget(k.job(i), *_LIST_FIELDS)
    return await pipe.execute()


def _row(job_id: str, f: list[Any]) -> dict[str, Any]:
    g = [v.decode(errors="replace") if v is not None else "" for v in f]
    name, state, created, finished, att, code, error = g
    return {"id": job_id, "name": name, "state": state, "attempts": att or "0", "code": code,
            "error": error[:200], "created": fmt_time(int(created) / 1000 if created.isdigit() else None),
            "finished": fmt_time(int(finished) / 1000 if finished.isdigit() else None)}


async def job_list(m: AsyncQueueManager, queue: str, state: str, offset: int, id_prefix: str = "",
                   name: str = "", code: str = "") -> dict[str, Any]:
    """One page of a state's jobs, newest first; with filters, scans at most ``SCAN_LIMIT`` ids from
    ``offset`` (reading only name and code for them) and says where the next page starts."""
    if not (id_prefix or name or code):
        ids = await m.list_job_ids(queue, state, offset, PAGE_SIZE)
        more = offset + PAGE_SIZE if len(ids) == PAGE_SIZE else None
        return {"jobs": await _full_rows(m, queue, ids), "next": more, "scanned": None}
    k = m.keys(queue)
    keys = [k.prio, k.wait] if state == "waiting" else [getattr(k, state), getattr(k, state)]
    res = await _filter_script(m)(keys=keys, args=[k.job_prefix, "1" if state == "waiting" else "0", offset,
                                                   SCAN_LIMIT, PAGE_SIZE, id_prefix, name, code])
    nxt = int(res[0]) if int(res[0]) >= 0 else None
    found = [i.decode() for i in res[1:]]
    scanned = None if nxt is None else nxt - offset
    return {"jobs": await _full_rows(m, queue, found), "next": nxt, "scanned": scanned}


def _filter_script(m: AsyncQueueManager) -> Any:
    script = getattr(m, "_dashboard_filter", None)
    if script is None:
        script = m.redis.register_script((files("jobq_dashboard") / "filter.lua").read_text())
        m._dashboard_filter = script  # type: ignore[attr-defined]
    return script


async def _full_rows(m: AsyncQueueManager, queue: str, ids: list[str]) -> list[dict[str, Any]]:
    rows = await _rows(m, queue, ids)
    return [_row(i, f) for i, f in zip(ids, rows, strict=True) if f[1] is not None]


async def job_detail(m: AsyncQueueManager, queue: str, job_id: str) -> dict[str, Any] | None:
    k = m.keys(queue)
    pipe = m.redis.pipeline(transaction=False)
    pipe.hkeys(k.job(job_id))
    for field in _BIG_FIELDS:
        pipe.hstrlen(k.job(job_id), field)
    pipe.hget(k.meta, "paused")
    pipe.xrevrange(k.events, "+", "-", count=EVENTS_SCAN)
    fields, *sizes, paused, events = await pipe.execute()
    if not fields:
        return None
    too_big = {f.encode(): n for f, n in zip(_BIG_FIELDS, sizes, strict=True) if n > MAX_FIELD_BYTES}
    wanted = [f for f in fields if f not in too_big]  # never pull a huge payload into the dashboard
    h = dict(zip(wanted, await m.redis.hmget(k.job(job_id), wanted), strict=True))
    job = Job.from_hash(queue, job_id, {f: v for f, v in h.items() if v is not None}, paused=paused == b"1")
    hidden = {f.decode(): f"({n:,} bytes: too large to show here; `jobq job {queue} {job_id} --json`)"
              for f, n in too_big.items()}
    attempts = []
    try:
        log = json.loads(h.get(b"faillog") or b"[]")
    except ValueError:
        log = []
    for a in log if isinstance(log, list) else []:
        if isinstance(a, dict):
            attempts.append({"attempt": a.get("a"), "time": fmt_time((a.get("t") or 0) / 1000),
                             "code": str(a.get("code", "")), "message": str(a.get("message", "")),
                             "stack": str(a.get("stack", ""))})
    timeline = []
    for eid, fields in reversed(events):
        f = {a.decode(): b.decode(errors="replace") for a, b in fields.items()}
        if f.pop("jobId", None) != job_id:
            continue
        event = f.pop("event", "")
        timeline.append({"time": fmt_time(int(eid.split(b"-")[0]) / 1000), "event": event,
                         "detail": ", ".join(f"{a}={b}" for a, b in f.items())})
    return {"job": job, "data": hidden.get("data") or pretty(redact_data(job.data)),
            "result": hidden.get("result") or pretty(job.result), "hidden": hidden,
            "options": pretty({k: v for k, v in attrs.asdict(job.options).items() if v}),
            "progress": job.progress, "progress_pct": _pct(job.progress),
            "stack": pretty(job.failure.stack) if job.failure and job.failure.stack else "",
            "events": timeline, "events_scanned": EVENTS_SCAN, "attempts": attempts,
            "times": {"created": fmt_time(job.created_at), "started": fmt_time(job.started_at),
                      "finished": fmt_time(job.finished_at)}}


def _pct(progress: Any) -> float | None:
    if isinstance(progress, int | float) and not isinstance(progress, bool) and 0 <= progress <= 100:
        return float(progress)
    return None


async def workers(m: AsyncQueueManager) -> list[dict[str, Any]]:
    out = []
    for w in await m.list_workers():
        qs = w.get("queues", [])
        out.append({"id": w.get("id", ""), "host": w.get("host", ""), "pid": w.get("pid", ""),
                    "queues": [q.get("queue", "") for q in qs],
                    "concurrency": sum(int(q.get("concurrency") or 0) for q in qs),
                    "active": sum(int(q.get("active") or 0) for q in qs),
                    "processed": sum(int(q.get("processed") or 0) for q in qs),
                    "failed": sum(int(q.get("failures") or 0) for q in qs),
                    "started": fmt_time(w.get("started")), "heartbeat": fmt_time(w.get("last_heartbeat")),
                    "age": w.get("age"), "alive": w.get("alive", False)})
    return out


async def schedules(m: AsyncQueueManager, queue: str, limit: int = 200) -> list[dict[str, Any]]:
    """The queue's schedules (at most ``limit``) with their last and next run."""
    out = []
    for info in (await m.list_schedules(queue, runs=1))[:limit]:
        s = info.schedule
        when = f"cron {s.cron} ({s.timezone})" if s.cron else f"every {s.every:g} s"
        out.append({"name": s.name, "when": when, "paused": info.paused, "last": fmt_time(info.last_tick),
                    "next": fmt_time(info.next_runs[0]) if info.next_runs else "-"})
    return out


def audit_key(prefix: str) -> str:
    return f"{prefix}:dashboard:audit"


AUDIT_MAX = 1000


async def audit(m: AsyncQueueManager, user: str, action: str, queue: str, job_id: str, result: str,
                address: str) -> None:
    """Append an admin action to the bounded audit list (newest first)."""
    entry = json.dumps({"t": time.time(), "user": user, "action": action, "queue": queue, "job": job_id,
                        "result": result, "address": address})
    pipe = m.redis.pipeline(transaction=False)
    pipe.lpush(audit_key(m.settings.prefix), entry)
    pipe.ltrim(audit_key(m.settings.prefix), 0, AUDIT_MAX - 1)
    await pipe.execute()


async def audit_entries(m: AsyncQueueManager, count: int = 200) -> list[dict[str, Any]]:
    raw = await m.redis.lrange(audit_key(m.settings.prefix), 0, count - 1)
    out = []
    for r in raw:
        try:
            e = json.loads(r)
        except ValueError:
            continue
        e["time"] = fmt_time(e.get("t"))
        out.append(e)
    return out
