"""Jobs that wait for other jobs, across queues, without a cross-slot script.

Each queue lives in its own Redis Cluster slot, so a dependency between queues is kept by steps
that are each one single-slot script and each idempotent; a crash between any two of them is
repaired by running the steps again:

1. ``block.lua`` creates the dependent in state ``blocked`` (its slot) and schedules a reconcile.
2. ``register.lua`` adds the dependent to each dependency's ``dn`` field (the dependency's slot);
   a dependency that has ended already answers with its state, and step 3 runs at once.
3. When a dependency ends, the script that ends it (fetch, fail, reap, cancel) moves its
   dependents to its queue's ``resolve`` outbox in the same atomic step. A worker of that queue,
   or the manager that cancelled it, then runs ``resolve.lua`` in each dependent's slot and only
   then deletes the outbox entry. ``resolve.lua`` counts each dependency once (``HSETNX``).
4. ``reconcile`` runs from every worker's sweep over blocked jobs whose check is due: it repeats
   step 2 for every unresolved dependency, so a producer that died between steps 1 and 2, or an
   outbox entry lost with its dependency's retention, still ends in a resolution.

A *flow* (:func:`add_flow`) adds several jobs all-or-nothing: each also waits on a gate key that
is written once, after every job exists. A producer that dies before writing it leaves jobs whose
gate never opens; the reconcile sweep cancels them after ``FLOW_GRACE_MS``, so none ever runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import redis

from . import tracing
from .errors import InvalidOptions, JobNotFound
from .keys import JOB_ID

if TYPE_CHECKING:
    from .jobs import Job
    from .queue import _Ops

FIRST_CHECK_MS = 10_000  # a producer registers within this; the sweep looks only after it
MAX_CHECK_MS = 3_600_000
FLOW_GRACE_MS = 60_000  # an uncommitted flow older than this is cancelled by the sweep
GATE_TTL_S = 7 * 86400
MAX_DEPENDENCIES = 100
POLICIES = ("fail", "run")
ENDED = ("completed", "failed", "cancelled", "MISSING")


@attrs.frozen
class FlowJob:
    """One job of :meth:`QueueManager.add_flow`; ``depends_on`` may name jobs of the same flow."""

    queue: str
    id: str
    data: Any
    depends_on: Sequence[tuple[str, str]] = ()
    on_dependency_failure: str = "fail"
    options: Mapping[str, Any] = attrs.field(factory=dict)


def dep_name(queue: str, job_id: str) -> str:
    return f"{queue}|{job_id}"


def check_dependencies(depends_on: Any, policy: Any) -> list[tuple[str, str]]:
    """Validate ``depends_on`` (pairs of queue and job id) and ``on_dependency_failure``."""
    from .spec import QUEUE_NAME

    if policy not in POLICIES:
        raise InvalidOptions(f"on_dependency_failure must be one of {POLICIES}, got {policy!r}")
    if isinstance(depends_on, str | bytes) or not isinstance(depends_on, Iterable):
        raise InvalidOptions("depends_on must be a list of (queue, job id) pairs")
    out: list[tuple[str, str]] = []
    for item in depends_on:
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise InvalidOptions(f"depends_on entry {item!r} must be a (queue, job id) pair")
        q, i = item
        if not isinstance(q, str) or not QUEUE_NAME.fullmatch(q):
            raise InvalidOptions(f"depends_on entry {item!r}: invalid queue name")
        if not isinstance(i, str) or not JOB_ID.fullmatch(i):
            raise InvalidOptions(f"depends_on entry {item!r}: invalid job id")
        if (q, i) not in out:
            out.append((q, i))
    if not out:
        raise InvalidOptions("depends_on is empty")
    if len(out) > MAX_DEPENDENCIES:
        raise InvalidOptions(f"depends_on names {len(out)} jobs; at most {MAX_DEPENDENCIES}")
    return out


def _resolve_call(ops: _Ops, queue: str, job_id: str, dep: str, state: str, result: str) -> Any:
    from .queue import _Script

    k = ops.keys(queue)
    return _Script("resolve", [k.job(job_id), k.wait, k.prio, k.blocked, k.events, k.marker, k.seq, k.failed,
                               k.stats, k.resolve],
                   [dep, state, result, ops.settings.events_maxlen, dep_name(queue, job_id)])


def add_blocked(ops: _Ops, queue: str, prepared: list[list[Any]], deps: list[list[tuple[str, str]]],
                policies: list[str], gate: str = "") -> Any:
    """Steps 1 and 2 for already validated jobs; returns the states of ids that existed ('' = new)."""
    from .queue import _Script

    k = ops.keys(queue)
    args: list[Any] = [ops.settings.events_maxlen, len(prepared), FIRST_CHECK_MS]
    for p, d, policy in zip(prepared, deps, policies, strict=True):
        job_id, name, raw, secrets, opts_json, _delay, priority, ref = p[:8]
        opts = json.loads(opts_json) if opts_json else {}
        opts["deps"] = [list(x) for x in d]
        if gate:
            opts["gate"] = gate
        args += [job_id, name, raw, secrets, json.dumps(opts, separators=(",", ":")), priority, ref,
                 len(d) + (1 if gate else 0), policy, p[11], p[12]]
    try:
        res = yield _Script("block", [k.blocked, k.events, *(k.job(p[0]) for p in prepared)], args)
    except redis.RedisError as exc:  # one script, all or nothing: as a plain enqueue
        from .queue import _enqueue_error

        if (mapped := _enqueue_error(queue, exc)) is None:
            raise
        raise mapped from exc
    states = [s.decode() if isinstance(s, bytes) else s for s in res[1:]]
    for p, d, state in zip(prepared, deps, states, strict=True):
        if not state:
            yield from register(ops, queue, p[0], d)
    return res[0], states


def register(ops: _Ops, queue: str, job_id: str, deps: Iterable[tuple[str, str]]) -> Any:
    """Step 2: register with each dependency; resolve at once those that have ended already."""
    from .queue import _Script

    target = dep_name(queue, job_id)
    for dq, di in deps:
        state, result = yield _Script("register", [ops.keys(dq).job(di)], [target])
        state = state.decode()
        if state != "pending":
            yield _resolve_call(ops, queue, job_id, dep_name(dq, di), state, result.decode())
            yield from drain(ops, queue)


def drain(ops: _Ops, queue: str, budget: int = 1000) -> Any:
    """Step 3: resolve the dependents in ``queue``'s outbox (and in the outboxes a failure cascades
    to), deleting each entry only after its resolution is written. Returns how many it resolved."""
    todo, done = [queue], 0
    while todo and done < budget:
        q = todo.pop()
        outbox = ops.keys(q).resolve
        while done < budget:
            entries = yield ("LRANGE", outbox, 0, 99)
            for raw in entries:
                e = json.loads(raw)
                tq, _, tid = e["t"].partition("|")
                res = yield _resolve_call(ops, tq, tid, e["d"], e["s"], e["r"])
                if int(res[1]) > 0 and tq not in todo:
                    todo.append(tq)
                yield ("LREM", outbox, 1, raw)
                done += 1
            if len(entries) < 100:
                break
    return done


def reconcile(ops: _Ops, queue: str, limit: int = 100) -> Any:
    """Step 4, for blocked jobs of ``queue`` whose check is due. Returns how many it looked at."""
    from .queue import _Pipe

    k = ops.keys(queue)
    t = yield ("TIME",)
    now = int(t[0]) * 1000 + int(t[1]) // 1000
    ids = yield ("ZRANGEBYSCORE", k.blocked, "-inf", now, "LIMIT", 0, limit)
    for raw_id in ids:
        job_id = raw_id.decode()
        h = yield ("HGETALL", k.job(job_id))
        g = {a.decode(): b.decode() for a, b in h.items()}
        if g.get("state") != "blocked":
            yield ("ZREM", k.blocked, job_id)
            continue
        opts = json.loads(g.get("opts") or "{}")
        gate = opts.get("gate")
        if gate and f"d:@{gate}" not in g:
            opened = yield ("GET", gate)
            if opened is not None:
                yield _resolve_call(ops, queue, job_id, f"@{gate}", "completed", "")
            elif now - int(g.get("created", now)) > FLOW_GRACE_MS:
                yield from cancel(ops, queue, job_id, "its flow was never committed")
                continue
        pending = [(q, i) for q, i in opts.get("deps", []) if f"d:{dep_name(q, i)}" not in g]
        yield from register(ops, queue, job_id, pending)
        checks = int(g.get("chk", 0))
        yield _Pipe([("HINCRBY", k.job(job_id), "chk", 1),
                     ("ZADD", k.blocked, "XX", now + min(FIRST_CHECK_MS * 2 ** (checks + 1), MAX_CHECK_MS),
                      job_id)])
    return len(ids)


def cancel(ops: _Ops, queue: str, job_id: str, reason: str | None) -> Any:
    """Cancel one job and resolve the jobs that depend on it. Returns the state it had."""
    from .queue import _Script

    k = ops.keys(queue)
    state, n = yield _Script("cancel", [k.job(job_id), k.wait, k.prio, k.delayed, k.active, k.failed, k.events,
                                        k.stats, k.blocked, k.resolve],
                             [job_id, reason or "cancelled", ops.settings.events_maxlen, dep_name(queue, job_id)])
    state = state.decode()
    if state == "MISSING":
        raise JobNotFound(f"no job {job_id!r} in queue {queue!r}")
    if int(n):
        yield from drain(ops, queue)
    return state


def cancel_group(ops: _Ops, queue: str, group: str, reason: str | None, page: int = 500) -> Any:
    """Cancel every unfinished job of one group: its ready jobs (the group's own list and zset), then
    its delayed, active and blocked jobs, found by reading the ``grp`` of each in pages. One cancel
    script per job, so a job that moves meanwhile is cancelled where it is. Returns how many."""
    from .queue import _Pipe

    k = ops.keys(queue)
    done = 0
    while True:  # ready jobs leave these two keys as they are cancelled
        ids = yield _Pipe([("LRANGE", k.group(group, "wait"), 0, page - 1),
                           ("ZRANGE", k.group(group, "prio"), 0, page - 1)])
        found = [i.decode() for i in ids[0] + ids[1]]
        if not found:
            break
        for job_id in found:
            done += (yield from cancel(ops, queue, job_id, reason)) not in ENDED
    for where in (k.delayed, k.active, k.blocked):
        start = 0
        while True:
            ids = yield ("ZRANGE", where, start, start + page - 1)
            if not ids:
                break
            groups = yield _Pipe([("HGET", k.job(i.decode()), "grp") for i in ids])
            mine = [i.decode() for i, g in zip(ids, groups, strict=True) if g is not None and g.decode() == group]
            for job_id in mine:
                done += (yield from cancel(ops, queue, job_id, reason)) not in ENDED
            start += page - len(mine)  # cancelled members left the set: the page shifts back
    return done


def add_flow(ops: _Ops, jobs: Sequence[FlowJob]) -> Any:
    """All-or-nothing: every job is created blocked on one gate, and the gate opens only once all
    exist. Jobs must come after the flow jobs they depend on."""
    from .queue import _Ops as Ops
    from .queue import _stamp_trace

    if not jobs:
        raise InvalidOptions("a flow needs at least one job")
    seen: set[tuple[str, str]] = set()
    plan = []
    for j in jobs:
        if (j.queue, j.id) in seen:
            raise InvalidOptions(f"a flow names {j.queue}/{j.id} twice")
        deps = check_dependencies(j.depends_on, j.on_dependency_failure) if j.depends_on else []
        later = [d for d in deps if d not in seen and any((x.queue, x.id) == d for x in jobs)]
        if later:
            raise InvalidOptions(f"flow job {j.queue}/{j.id} depends on {later[0][0]}/{later[0][1]}, "
                                 "which comes after it: list dependencies first")
        seen.add((j.queue, j.id))
        yield from Ops._check_queue(ops, j.queue)
        plan.append((j, deps, ops._prepare(j.queue, j.id, j.data, dict(j.options))))
    gate = f"{ops.keys(jobs[0].queue).base}flow:{os.urandom(12).hex()}"
    for j, deps, p in plan:
        if p[5]:
            raise InvalidOptions(f"flow job {j.queue}/{j.id}: delay cannot be combined with dependencies")
        yield from ops._upload([p])
        span = None
        if tracing.TRACER is not None:  # each job joins the caller's trace, as with add_job
            span, traceparent = tracing.start_send(j.queue, [j.id])
            if traceparent:
                _stamp_trace([p], traceparent)
        try:
            _now, states = yield from add_blocked(ops, j.queue, [p], [deps], [j.on_dependency_failure], gate)
        finally:
            if span is not None:
                span.end()
        if states[0]:
            raise InvalidOptions(f"flow job {j.queue}/{j.id} exists already (state {states[0]}); "
                                 "a flow creates new jobs only")
    yield ("SET", gate, "1", "EX", GATE_TTL_S)  # the commit point
    for j, _deps, _p in plan:
        yield _resolve_call(ops, j.queue, j.id, f"@{gate}", "completed", "")
    out: list[Job] = []
    for j in jobs:
        job = yield from Ops.get_job(ops, j.queue, j.id)
        out.append(job)
    return out
