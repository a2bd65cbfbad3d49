"""Producer and admin API: ``QueueManager`` (blocking) and ``AsyncQueueManager`` (asyncio).

Both expose the same methods. Each operation is written once, as a generator that yields the
Redis calls it needs; a sync or an async driver runs it. Every state change is one Lua script.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from collections.abc import Callable, Generator, Iterable, Mapping
from typing import Any, TypeVar

import attrs
import redis
import redis.asyncio

from . import tracing
from .config import Settings
from .errors import (
    ConfigError,
    EnqueueError,
    InvalidOptions,
    InvalidPayload,
    JobNotFound,
    PayloadTooLarge,
    QueueFull,
    QueueUnavailable,
    UnknownQueue,
)
from .jobs import REDACTED, STATES, Job, JobOptions, job_to_dict
from .keys import JOB_ID, QueueKeys, queues_key, worker_key, workers_key
from .rawjson import RawJSON
from .results import ResultOps
from .schedules import ScheduleOps
from .scripts import Scripts
from .serialization import structure_payload
from .spec import QUEUE_NAME, QueueSpec

T = TypeVar("T")
Op = Generator[Any, Any, T]
_OPTION_NAMES = ("retries", "backoff", "timeout", "delay", "priority", "name", "group", "limit_key")
GROUP = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")
_NO_OPTIONS = JobOptions()


@attrs.frozen
class _Script:
    name: str
    keys: list[str]
    args: list[Any]


@attrs.frozen
class _Pipe:
    cmds: list[tuple[Any, ...]]


@attrs.frozen
class _Blocking:
    fn: Callable[[], Any]


def make_client(settings: Settings, *, asyncio: bool = False, socket_timeout: float | None = None) -> Any:
    """A Redis client with timeouts on every socket.

    ``redis://`` and ``rediss://`` (TLS) URLs, with ``user:password@`` for an ACL user, or
    ``redis+sentinel://[user:password@]host:26379,host2:26379/<service>[/<db>]`` to follow the master
    that Sentinel names (reconnecting to the new one after a failover), or
    ``redis+cluster://host:port`` for Redis Cluster (each queue lives in one slot).
    """
    if settings.redis_url.startswith("fakeredis://"):
        return _fake_client(settings.redis_url, asyncio)
    timeout = settings.socket_timeout if socket_timeout is None else socket_timeout
    options = dict(socket_timeout=timeout, socket_connect_timeout=min(timeout, 5.0), retry_on_timeout=False)
    if settings.redis_url.startswith("redis+sentinel://"):
        return _sentinel_master(settings.redis_url, asyncio, options)
    if settings.redis_url.startswith(("redis+cluster://", "rediss+cluster://")):
        url = settings.redis_url.replace("+cluster", "", 1)
        options.pop("retry_on_timeout")
        if asyncio:
            from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

            return AsyncRedisCluster.from_url(url, **options)
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(url, **options)
    cls = redis.asyncio.Redis if asyncio else redis.Redis
    return cls.from_url(settings.redis_url, health_check_interval=30, **options)


_FAKE_SERVERS: dict[str, Any] = {}


def _fake_client(url: str, asyncio: bool) -> Any:
    """``fakeredis://<name>``: an in-process Redis with Lua (fakeredis + lupa) for tests without a server.

    Every client of one name shares one server, so a test's producer and its worker threads meet;
    a handler run with ``execution="process"`` cannot reach it (use a real Redis for those).
    """
    import fakeredis

    name = url.removeprefix("fakeredis://").strip("/") or "default"
    server = _FAKE_SERVERS.get(name)
    if server is None:
        server = _FAKE_SERVERS.setdefault(name, fakeredis.FakeServer(version=(7, 2)))
    cls = fakeredis.FakeAsyncRedis if asyncio else fakeredis.FakeRedis
    return cls(server=server)


def _sentinel_master(url: str, asyncio: bool, options: dict[str, Any]) -> Any:
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    hosts = []
    for item in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "26379")
        hosts.append((host, int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ConfigError("a redis+sentinel:// URL names the service: redis+sentinel://host:26379/mymaster")
    db = int(path[1]) if len(path) > 1 else 0
    auth = {"username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None}
    if asyncio:
        from redis.asyncio.sentinel import Sentinel as AsyncSentinel

        sentinel: Any = AsyncSentinel(hosts, **options)
    else:
        from redis.sentinel import Sentinel

        sentinel = Sentinel(hosts, **options)
    return sentinel.master_for(path[0], db=db, **auth, **options)


_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _dumps(value: Any, what: str) -> str | bytes:
    """Compact JSON of ``value``; bytes when it holds :class:`~jobq.rawjson.RawJSON`."""
    try:
        return _encode(value)
    except TypeError:
        pass  # RawJSON, or not serialisable: the slower path below tells which
    except ValueError as exc:
        raise InvalidPayload(f"{what} is not JSON-serialisable: {exc}") from None
    raws: list[bytes] = []
    mark = f"\x00jobq-raw-{os.urandom(8).hex()}\x00"

    def splice(obj: Any) -> str:
        if isinstance(obj, RawJSON):
            raws.append(obj.data)
            return mark
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    try:
        text = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=splice).encode(value)
    except (TypeError, ValueError) as exc:
        raise InvalidPayload(f"{what} is not JSON-serialisable: {exc}") from None
    parts = text.encode().split(json.dumps(mark).encode())  # the mark as the encoder wrote it, quoted
    pieces = [parts[0]]
    for raw, part in zip(raws, parts[1:], strict=True):
        pieces += (raw, part)
    return b"".join(pieces)  # one copy of the raw bytes, the only one


def validate_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Check enqueue options; return those to store (``delay`` and ``priority`` are kept apart)."""
    if not options:
        return {}
    unknown = set(options) - set(_OPTION_NAMES)
    if unknown:
        raise InvalidOptions(f"unknown option(s): {', '.join(sorted(unknown))}; known: {', '.join(_OPTION_NAMES)}")
    out: dict[str, Any] = {}

    def number(name: str, lo: float, hi: float, integer: bool = False) -> None:
        v = options.get(name)
        if v is None:
            return
        if isinstance(v, bool) or not isinstance(v, int | float) or (integer and not isinstance(v, int)):
            raise InvalidOptions(f"option {name} must be {'an integer' if integer else 'a number'}, got {v!r}")
        if not (lo <= v <= hi) or (isinstance(v, float) and math.isnan(v)):
            raise InvalidOptions(f"option {name}={v!r} is out of range [{lo}, {hi}]")
        out[name] = v

    number("retries", 0, 100, integer=True)
    number("backoff", 0, 86400)
    number("timeout", 0.001, 7 * 86400)
    number("delay", 0, 365 * 86400)
    number("priority", -1000, 1000, integer=True)
    name = options.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 200):
        raise InvalidOptions("option name must be a string of at most 200 characters")
    if name:
        out["name"] = name
    group = options.get("group")
    if group is not None:
        if not isinstance(group, str) or not GROUP.fullmatch(group):
            raise InvalidOptions(f"option group={group!r} must match {GROUP.pattern}")
        out["group"] = group
    key = options.get("limit_key")
    if key is not None:
        out["limit_key"] = check_limit_key(key, "option limit_key")
    return out


def installed_specs() -> dict[str, QueueSpec]:
    """The queues the installed plugins declare (entry points), looked up once per process.

    A producer deployed before any worker has run still knows them, and validates their payloads
    (and hides their secret fields) as the workers will. A broken plugin's queues are left out.
    """
    key = os.environ.get("JOBQ_DISABLE_PLUGINS", "")
    found = _INSTALLED.get(key)
    if found is None:
        from .plugins import PluginHost

        host = PluginHost().load()
        found = {name: spec for name, spec in host.specs.items() if not host.plugins[host.queue_owner[name]].error}
        _INSTALLED[key] = found
    return found


_INSTALLED: dict[str, dict[str, QueueSpec]] = {}


def check_limit_key(key: Any, what: str) -> str:
    """A limit key is 1-200 printable characters (it names a hold shared by many jobs)."""
    if not isinstance(key, str) or not 1 <= len(key) <= 200 or not key.isprintable():
        raise InvalidOptions(f"{what} must be a string of 1-200 printable characters, got {key!r:.80}")
    return key


class _Ops(ScheduleOps, ResultOps):
    """Every operation, written once as a generator of Redis calls."""

    def __init__(self, settings: Settings | None = None, specs: Iterable[QueueSpec] | None = None,
                 *, strict: bool = True) -> None:
        self.settings = settings or Settings.from_env()
        self.specs: dict[str, QueueSpec] = {s.name: s for s in (specs or ())}
        self.strict = strict
        self._known: set[str] = set(self.specs)
        self._looked_up = False
        self._storage: Any = None
        tracing.setup()

    def keys(self, queue: str) -> QueueKeys:
        return QueueKeys(self.settings.prefix, queue)

    @property
    def storage(self) -> Any:
        if self._storage is None:
            from .storage import Storage

            self._storage = Storage.from_settings(self.settings)
        return self._storage

    # -- enqueue -------------------------------------------------------------------------
    def _prepare(self, queue: str, job_id: str | None, data: Any, options: Mapping[str, Any]) -> list[Any]:
        if job_id is None:
            job_id = os.urandom(16).hex()
        elif not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
            raise InvalidOptions(f"job id {job_id!r} must match {JOB_ID.pattern}")
        opts = validate_options(options)
        spec = self.specs.get(queue)
        given = data
        if spec is not None and spec.payload is not None:
            structure_payload(data, spec.payload)
        secrets = ""
        if spec is not None and spec.secret_fields and isinstance(data, dict):
            hidden = {k: data[k] for k in spec.secret_fields if k in data}
            if hidden:
                secrets = _dumps(hidden, "secret fields")
                data = {**data, **{k: REDACTED for k in hidden}}
        raw = _dumps(data, "job data")
        limit = self.settings.max_payload_bytes
        if spec is not None and spec.max_payload_bytes is not None:
            limit = min(limit, spec.max_payload_bytes)
        if len(raw) > limit:
            raise PayloadTooLarge(f"job data is {len(raw)} bytes, over the {queue} queue's limit of {limit} bytes")
        ref, blob = "", None
        if len(raw) > self.settings.claim_check_bytes:
            ref = f"_payloads/{queue}/{job_id}-{os.urandom(4).hex()}.json"  # never overwrites a live job's
            raw, blob = "", raw
        delay_ms = int(opts.pop("delay", 0) * 1000)
        priority = opts.pop("priority", 0)
        name = opts.pop("name", None) or ""
        group = opts.pop("group", None) or ""
        key = opts.pop("limit_key", None)
        if key is None and spec is not None and spec.limit_key is not None:
            key = spec.limit_key(given)
            if key is not None:
                check_limit_key(key, f"the limit key {queue}'s limit_key derived")
        return [job_id, name, raw, secrets, _dumps(opts, "options") if opts else "", delay_ms, priority, ref, blob,
                data, opts, group, key or ""]

    def _upload(self, prepared: list[list[Any]]) -> Op[None]:
        """Claim-checked payloads go to storage before their jobs exist."""
        blobs = [(p[7], p[8]) for p in prepared if p[7]]
        if blobs:
            def upload() -> None:
                for key, value in blobs:
                    self.storage.put(key, value if isinstance(value, bytes) else value.encode())

            yield _Blocking(upload)

    def add_jobs(self, queue: str, jobs: Iterable[tuple[str | None, Any] | tuple[str | None, Any, Mapping[str, Any]]],
                 ) -> Op[list[Job]]:
        from .dependencies import check_dependencies

        try:
            yield from self._check_queue(queue)
        except redis.RedisError as exc:
            if (mapped := _enqueue_error(queue, exc)) is None:
                raise
            raise mapped from exc
        prepared, blocked, deps, policies = [], [], [], []
        for item in jobs:
            job_id, data, *rest = item
            options = dict(rest[0]) if rest else {}
            depends_on = options.pop("depends_on", None)
            policy = options.pop("on_dependency_failure", "fail")
            p = self._prepare(queue, job_id, data, options)
            if depends_on is None:
                prepared.append(p)
                continue
            if p[5]:
                raise InvalidOptions("delay cannot be combined with depends_on")
            deps.append(check_dependencies(depends_on, policy))
            policies.append(policy)
            blocked.append(p)
        ids = [p[0] for p in prepared + blocked]
        if len(set(ids)) != len(ids):
            raise InvalidOptions("a bulk add names the same job id twice")
        if blocked:
            wanted = {d for ds in deps for d in ds}
            found = yield _Pipe([("EXISTS", self.keys(q).job(i)) for q, i in wanted])
            missing = [f"{q}/{i}" for (q, i), n in zip(wanted, found, strict=True) if not n]
            if missing:
                raise InvalidOptions(f"depends_on names jobs that do not exist: {', '.join(sorted(missing))}")
        yield from self._upload(prepared + blocked)
        span = None
        if tracing.TRACER is not None:
            span, traceparent = tracing.start_send(queue, ids)
            if traceparent:
                _stamp_trace(prepared + blocked, traceparent)
        try:
            states, now_ms = yield from self._write(queue, prepared, blocked, deps, policies)
        except BaseException as exc:
            if span is not None:
                tracing.end(span, exc)
            raise
        if span is not None:
            span.end()
        k = self.keys(queue)
        now = now_ms / 1000
        now_ms = 0
        existing = [i for i in ids if states[i]]
        orphans = [p[7] for p in prepared + blocked if p[7] and states[p[0]]]
        if orphans:  # the id existed: the job keeps its own payload, this upload is not needed
            yield _Blocking(lambda: [self.storage.delete(key) for key in orphans])
        found_jobs: dict[str, Job] = {}
        if existing:
            rows = yield _Pipe([("HGETALL", k.job(i)) for i in existing])
            found_jobs = {i: Job.from_hash(queue, i, h) for i, h in zip(existing, rows, strict=True)}
        blocked_ids = {p[0]: d for p, d in zip(blocked, deps, strict=True)}
        out = []
        for p in prepared + blocked:
            if p[0] in found_jobs:
                out.append(found_jobs[p[0]])
                continue
            state = "blocked" if p[0] in blocked_ids else "delayed" if p[5] > 0 else "waiting"
            out.append(Job(id=p[0], queue=queue, name=p[1], data=p[9],
                           options=JobOptions(delay=p[5] / 1000, priority=p[6], **p[10]) if p[10] or p[5] or p[6]
                           else _NO_OPTIONS,
                           state=state, created_at=now, payload_ref=p[7] or None,
                           depends_on=tuple(blocked_ids.get(p[0], ())), group=p[11] or None))
        order = {i: n for n, i in enumerate(ids)}
        return sorted(out, key=lambda j: order[j.id])

    def _write(self, queue: str, prepared: list[list[Any]], blocked: list[list[Any]],
               deps: list[list[tuple[str, str]]], policies: list[str]) -> Op[tuple[dict[str, str], int]]:
        """Create the jobs (ready ones in one enqueue.lua call); the states of ids that existed."""
        from .dependencies import add_blocked

        states: dict[str, str] = {}
        now_ms = 0
        if prepared:
            try:
                res = yield _Ops._enqueue_call(self, queue, prepared)
            except redis.RedisError as exc:
                if (mapped := _enqueue_error(queue, exc)) is None:
                    raise
                raise mapped from exc
            now_ms = res[0]
            states.update((p[0], s.decode() if isinstance(s, bytes) else s)
                          for p, s in zip(prepared, res[1:], strict=True))
        if blocked:
            now_ms, bstates = yield from add_blocked(self, queue, blocked, deps, policies)
            states.update((p[0], s) for p, s in zip(blocked, bstates, strict=True))
        return states, now_ms

    def _enqueue_call(self, queue: str, prepared: list[list[Any]]) -> _Script:
        """The enqueue script call for jobs from ``_prepare`` (a schedule tick extends it)."""
        k = self.keys(queue)
        args: list[Any] = [self.settings.events_maxlen, len(prepared), k.base]
        for p in prepared:
            args.extend(p[:8])
            args.extend(p[11:13])
        return _Script("enqueue", [k.wait, k.prio, k.delayed, k.marker, k.events, k.seq, k.idle, k.active,
                                   k.meta, *(k.job(p[0]) for p in prepared)], args)

    def add_job(self, queue: str, job_id: str | None, data: Any, **options: Any) -> Op[Job]:
        jobs = yield from _Ops.add_jobs(self, queue, [(job_id, data, options)])
        return jobs[0]

    def _check_queue(self, queue: str) -> Op[None]:
        if not isinstance(queue, str) or not QUEUE_NAME.fullmatch(queue):
            raise UnknownQueue(f"invalid queue name {queue!r}")
        if queue in self._known or queue in self.specs or not self.strict:
            return
        if not self._looked_up:  # once per manager, and only for a queue it does not know yet
            self._looked_up = True
            for name, spec in installed_specs().items():
                self.specs.setdefault(name, spec)
                self._known.add(name)
            if queue in self.specs:
                return
        known = yield ("SISMEMBER", queues_key(self.settings.prefix), queue)
        if not known:
            raise UnknownQueue(
                f"unknown queue {queue!r}: no installed plugin declares it and no worker serves it"
            )
        self._known.add(queue)

    # -- reading -----------------------------------------------------------------------------
    def get_job(self, queue: str, job_id: str) -> Op[Job | None]:
        k = self.keys(queue)
        h, paused = yield _Pipe([("HGETALL", k.job(job_id)), ("HGET", k.meta, "paused")])
        if not h:
            return None
        return Job.from_hash(queue, job_id, h, paused=paused == b"1")

    def get_job_status(self, queue: str, job_id: str) -> Op[str | None]:
        job = yield from _Ops.get_job(self, queue, job_id)
        return job.state if job else None

    def get_queue_metrics(self, queue: str) -> Op[dict[str, int]]:
        stats = yield from _Ops._metrics(self, [queue])
        return stats[queue]

    def _metrics(self, queues: list[str]) -> Op[dict[str, dict[str, int]]]:
        """Counts per state of every queue in ``queues``, in one pipelined round trip."""
        cmds: list[tuple[Any, ...]] = []
        for q in queues:
            k = self.keys(q)
            cmds += [("LLEN", k.wait), ("ZCARD", k.prio), ("ZCARD", k.active), ("ZCARD", k.completed),
                     ("ZCARD", k.failed), ("ZCARD", k.delayed), ("HGET", k.meta, "paused"), ("GET", k.gready)]
        replies = yield _Pipe(cmds)
        out = {}
        for i, q in enumerate(queues):
            wait, prio, active, completed, failed, delayed, paused, grouped = replies[i * 8:i * 8 + 8]
            waiting, is_paused = wait + prio + max(int(grouped or 0), 0), paused == b"1"
            out[q] = {"waiting": 0 if is_paused else waiting, "active": active, "completed": completed,
                      "failed": failed, "delayed": delayed, "paused": waiting if is_paused else 0}
        return out

    def list_queues(self) -> Op[list[str]]:
        names = yield ("SMEMBERS", queues_key(self.settings.prefix))
        return sorted({n.decode() for n in names} | set(self.specs))

    def get_queue_stats(self) -> Op[dict[str, dict[str, int]]]:
        queues = yield from _Ops.list_queues(self)
        if not queues:
            return {}
        return (yield from _Ops._metrics(self, queues))

    def get_counters(self, queue: str) -> Op[dict[str, int]]:
        raw = yield ("HGETALL", self.keys(queue).stats)
        return {k.decode(): int(v) for k, v in raw.items()}

    def list_job_ids(self, queue: str, state: str = "failed", start: int = 0, count: int = 50) -> Op[list[str]]:
        """A window of job ids in one state, newest first (``waiting``: prioritised ones, then the FIFO list)."""
        if state not in ("failed", "completed", "delayed", "active", "waiting", "blocked"):
            raise InvalidOptions(f"cannot list jobs in state {state!r}")
        k = self.keys(queue)
        start, count = max(0, int(start)), max(0, min(int(count), 10_000))
        if not count:
            return []
        if state != "waiting":
            ids = yield ("ZREVRANGE", getattr(k, state), start, start + count - 1)
            return [i.decode() for i in ids]
        nprio = yield ("ZCARD", k.prio)
        ids = []
        if start < nprio:
            ids = (yield ("ZRANGE", k.prio, start, start + count - 1))
        if len(ids) < count:
            first = max(0, start - nprio)
            ids += (yield ("LRANGE", k.wait, first, first + count - len(ids) - 1))
        return [i.decode() for i in ids]

    def list_jobs(self, queue: str, state: str = "failed", start: int = 0, count: int = 50) -> Op[list[Job]]:
        """Jobs in one state, newest first (``failed`` is the dead-letter view)."""
        k = self.keys(queue)
        ids = yield from _Ops.list_job_ids(self, queue, state, start, count)
        if not ids:
            return []
        rows = yield _Pipe([("HGETALL", k.job(i)) for i in ids])
        return [Job.from_hash(queue, i, h) for i, h in zip(ids, rows, strict=True) if h]

    def list_workers(self) -> Op[list[dict[str, Any]]]:
        p = self.settings.prefix
        ids = yield ("ZRANGE", workers_key(p), 0, -1, "WITHSCORES")
        if not ids:
            return []
        if isinstance(ids[0], list | tuple):  # some client versions pair members with scores already
            pairs = [(w, b) for w, b in ids]
        else:
            pairs = list(zip(ids[::2], ids[1::2], strict=True))
        infos = yield _Pipe([("GET", worker_key(p, w.decode())) for w, _ in pairs])
        now = yield ("TIME",)
        now_s = int(now[0]) + int(now[1]) / 1e6
        out = []
        for (wid, beat), info in zip(pairs, infos, strict=True):
            d = json.loads(info) if info else {"id": wid.decode()}
            d["last_heartbeat"] = float(beat) / 1000
            d["age"] = round(now_s - float(beat) / 1000, 3)
            d["alive"] = info is not None and d.get("healthy", False)
            out.append(d)
        return out

    def health_check(self) -> Op[dict[str, Any]]:
        try:
            yield ("PING",)
        except redis.RedisError as exc:
            return {"healthy": False, "redis": False, "error": f"{type(exc).__name__}: {exc}", "workers": []}
        workers = yield from _Ops.list_workers(self)
        alive = [w for w in workers if w["alive"]]
        from .prefork import children_summary

        supervisors = children_summary(workers)  # `jobq run --processes N`: every child must be alive
        return {"healthy": bool(alive) and all(s["healthy"] for s in supervisors), "redis": True,
                "workers": workers, "alive_workers": len(alive), "supervisors": supervisors}

    # -- control -----------------------------------------------------------------------------
    def pause_queue(self, queue: str) -> Op[None]:
        yield ("HSET", self.keys(queue).meta, "paused", "1")

    def resume_queue(self, queue: str) -> Op[None]:
        k = self.keys(queue)
        yield _Pipe([("HDEL", k.meta, "paused"), ("LPUSH", k.marker, *["1"] * 8), ("LTRIM", k.marker, 0, 63)])

    def pause_group(self, queue: str, group: str) -> Op[None]:
        """Stop starting jobs of one group of ``queue`` (its active jobs finish)."""
        yield from _Ops._group(self, queue, group, "pause")

    def resume_group(self, queue: str, group: str) -> Op[None]:
        yield from _Ops._group(self, queue, group, "resume")

    def _group(self, queue: str, group: str, action: str) -> Op[None]:
        if not isinstance(group, str) or not GROUP.fullmatch(group):
            raise InvalidOptions(f"group {group!r} must match {GROUP.pattern}")
        k = self.keys(queue)
        yield _Script("group", [k.gpaused, k.ring, k.marker], [group, action])

    def get_flow_control(self, queue: str) -> Op[dict[str, Any]]:
        """Flow control of ``queue`` now: its limits, starts in the current rate window, held limit
        keys, groups in the ring, paused or waiting for their rate window."""
        k = self.keys(queue)
        meta, now, held, ring, paused, waking = yield _Pipe([
            ("HMGET", k.meta, "rate", "gconc", "grate"), ("TIME",), ("ZCARD", k.limits), ("ZCARD", k.ring),
            ("SCARD", k.gpaused), ("ZCARD", k.gwake)])
        rate, gconc, grate = (x.decode() if x else None for x in meta)
        now_ms = int(now[0]) * 1000 + int(now[1]) // 1000
        out: dict[str, Any] = {"rate_limit": _rate_of(rate), "group_concurrency": int(gconc) if gconc else None,
                               "group_rate_limit": _rate_of(grate), "held_keys": held, "groups_ready": ring,
                               "groups_paused": paused, "groups_rate_limited": waking, "starts_in_window": None,
                               "limited": False}
        if rate:
            mx, win = (int(x) for x in rate.split("/"))
            n = yield ("ZCOUNT", k.starts, f"({now_ms - win}", "+inf")
            out["starts_in_window"], out["limited"] = n, n >= mx
        out["limited"] = out["limited"] or held > 0
        return out

    def get_group_stats(self, queue: str, top: int = 10) -> Op[list[dict[str, Any]]]:
        """The ``top`` groups of ``queue`` with the most waiting jobs (an admin read: it looks at up
        to 1,000 groups of each kind, never every group key)."""
        k = self.keys(queue)
        ring, paused, waking, active = yield _Pipe([
            ("ZRANGE", k.ring, 0, 999), ("SRANDMEMBER", k.gpaused, 1000), ("ZRANGE", k.gwake, 0, 999),
            ("HGETALL", k.gactive)])
        names = sorted({g.decode() for g in [*ring, *paused, *waking, *list(active)[:1000]]})
        if not names:
            return []
        counts = yield _Pipe([c for g in names for c in (("LLEN", k.group(g, "wait")), ("ZCARD", k.group(g, "prio")))])
        paused_set, waking_set = {g.decode() for g in paused}, {g.decode() for g in waking}
        rows = [{"group": g, "waiting": counts[2 * i] + counts[2 * i + 1],
                 "active": int(active.get(g.encode(), 0)), "paused": g in paused_set, "rate_limited": g in waking_set}
                for i, g in enumerate(names)]
        rows.sort(key=lambda r: (-r["waiting"], r["group"]))
        return rows[:top]

    def retry_job(self, queue: str, job_id: str) -> Op[bool]:
        k = self.keys(queue)
        res = yield _Script("retry", [k.job(job_id), k.failed, k.wait, k.prio, k.marker, k.events, k.seq],
                            [job_id, self.settings.events_maxlen])
        res = res.decode()
        if res == "MISSING":
            raise JobNotFound(f"no job {job_id!r} in queue {queue!r}")
        if res == "SCRUBBED":
            raise InvalidOptions(
                f"job {job_id!r} had secret fields, erased when it failed; enqueue it again with them"
            )
        return res == "OK"

    def retry_failed(self, queue: str, limit: int = 1000) -> Op[int]:
        jobs = yield from _Ops.list_jobs(self, queue, "failed", 0, limit)
        n = 0
        for j in jobs:
            try:
                n += bool((yield from _Ops.retry_job(self, queue, j.id)))
            except InvalidOptions:
                continue
        return n

    def promote_job(self, queue: str, job_id: str) -> Op[bool]:
        """Make a delayed job ready now; ``False`` when it is not delayed (any more)."""
        k = self.keys(queue)
        res = yield _Script("promote", [k.job(job_id), k.delayed, k.wait, k.prio, k.marker, k.events, k.seq],
                            [job_id, self.settings.events_maxlen])
        return bool(res)

    def cancel_job(self, queue: str, job_id: str, reason: str | None = None) -> Op[str]:
        """Cancel a job: waiting, delayed or blocked, it never starts; active, its handler is stopped
        (async: the task is cancelled; thread: ``job.cancelled`` turns true; process: the child is
        killed). Returns the state it was in; a finished job is left as it is."""
        from .dependencies import cancel

        if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
            raise InvalidOptions("reason must be a string of at most 500 characters")
        return (yield from cancel(self, queue, job_id, reason))

    def cancel_group(self, queue: str, group: str, reason: str | None = None) -> Op[int]:
        """Cancel every unfinished job of ``group`` in ``queue`` (as :meth:`cancel_job` each); returns
        how many. Jobs added to the group meanwhile are not; pause the group first to stop intake."""
        from .dependencies import cancel_group

        if not isinstance(group, str) or not GROUP.fullmatch(group):
            raise InvalidOptions(f"group {group!r} must match {GROUP.pattern}")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
            raise InvalidOptions("reason must be a string of at most 500 characters")
        return (yield from cancel_group(self, queue, group, reason))

    def add_flow(self, jobs: Iterable[Any]) -> Op[list[Job]]:
        """Add jobs across queues all-or-nothing (:class:`jobq.FlowJob`); none runs unless all exist."""
        from .dependencies import add_flow

        return (yield from add_flow(self, list(jobs)))

    def remove_job(self, queue: str, job_id: str) -> Op[bool]:
        k = self.keys(queue)
        res = yield _Script("remove", [k.job(job_id), k.wait, k.prio, k.delayed, k.active, k.completed,
                                       k.failed, k.gc, k.events], [job_id, self.settings.events_maxlen])
        return bool(res)

    def purge(self, queue: str, state: str = "failed") -> Op[int]:
        if state not in ("failed", "completed"):
            raise InvalidOptions("purge takes 'failed' or 'completed'")
        k = self.keys(queue)
        total = 0
        while True:
            n = yield _Script("purge", [getattr(k, state), k.gc], [k.job_prefix, 500])
            total += n
            if n < 500:
                return total

    def read_events(self, queue: str, last_id: str = "0-0", count: int = 100) -> Op[list[dict[str, str]]]:
        rows = yield ("XRANGE", self.keys(queue).events, f"({last_id}" if last_id != "0-0" else "-", "+",
                      "COUNT", count)
        return [{"id": i.decode(), **{a.decode(): b.decode() for a, b in f.items()}} for i, f in rows]


def _rate_of(text: str | None) -> tuple[int, float] | None:
    if not text:
        return None
    mx, win = text.split("/")
    return int(mx), int(win) / 1000


def _enqueue_error(queue: str, exc: redis.RedisError) -> EnqueueError | None:
    """The producer's view of a Redis failure up to the enqueue script, which writes all or nothing.

    Redis refuses a script under OOM at its first write, so nothing was written. A refused or
    broken connection means the script did not run; after a timeout it may have, which is why
    the advice is to retry with the same job id (enqueue is idempotent per id).
    """
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return QueueFull(f"queue {queue!r} is full: Redis is at its maxmemory and refused the write; "
                         "nothing was enqueued, retry later", queue=queue)
    if isinstance(exc, redis.TimeoutError):
        return QueueUnavailable(f"queue {queue!r} is unavailable: Redis did not answer in time; retry with the "
                                "same job id (enqueue is idempotent per id)", queue=queue)
    if isinstance(exc, redis.ConnectionError):
        return QueueUnavailable(f"queue {queue!r} is unavailable: cannot reach Redis ({type(exc).__name__}); "
                                "nothing was enqueued", queue=queue)
    return None


def _stamp_trace(prepared: list[list[Any]], traceparent: str) -> None:
    """Store the W3C trace context in each job's options (``tp``), where the worker finds it."""
    for p in prepared:
        opts = json.loads(p[4]) if p[4] else {}
        opts["tp"] = traceparent
        p[4] = _dumps(opts, "options")


def _exec_sync(client: redis.Redis, scripts: Scripts, call: Any) -> Any:
    if isinstance(call, _Script):
        return getattr(scripts, call.name)(keys=call.keys, args=call.args)
    if isinstance(call, _Pipe):
        pipe = client.pipeline(transaction=False)
        for cmd in call.cmds:
            pipe.execute_command(*cmd)
        return pipe.execute()
    if isinstance(call, _Blocking):
        return call.fn()
    return client.execute_command(*call)


async def _exec_async(client: redis.asyncio.Redis, scripts: Scripts, call: Any) -> Any:
    import asyncio

    if isinstance(call, _Script):
        return await getattr(scripts, call.name)(keys=call.keys, args=call.args)
    if isinstance(call, _Pipe):
        pipe = client.pipeline(transaction=False)
        for cmd in call.cmds:
            pipe.execute_command(*cmd)
        return await pipe.execute()
    if isinstance(call, _Blocking):
        return await asyncio.to_thread(call.fn)
    return await client.execute_command(*call)


def _run_sync(client: redis.Redis, scripts: Scripts, gen: Op[T]) -> T:
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            call = gen.throw(error) if error is not None else gen.send(value)
            error = None
            try:
                value = _exec_sync(client, scripts, call)
            except Exception as exc:  # handed to the operation, which may handle it
                error = exc
    except StopIteration as stop:
        return stop.value


async def _run_async(client: redis.asyncio.Redis, scripts: Scripts, gen: Op[T]) -> T:
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            call = gen.throw(error) if error is not None else gen.send(value)
            error = None
            try:
                value = await _exec_async(client, scripts, call)
            except Exception as exc:
                error = exc
    except StopIteration as stop:
        return stop.value


_PUBLIC = ("add_job", "add_jobs", "get_job", "get_job_status", "get_queue_metrics", "get_queue_stats",
           "list_queues", "get_counters", "list_jobs", "list_job_ids", "list_workers", "health_check",
           "pause_queue", "resume_queue", "retry_job", "retry_failed", "promote_job", "remove_job", "purge",
           "read_events", "cancel_job", "cancel_group", "add_flow", "wait_for", "add_schedule", "remove_schedule",
           "pause_schedule", "resume_schedule", "trigger_schedule", "list_schedules", "pause_group", "resume_group",
           "get_flow_control", "get_group_stats")


def _sync_method(name: str) -> Callable[..., Any]:
    op = getattr(_Ops, name)

    @functools.wraps(op)
    def method(self: QueueManager, *args: Any, **kwargs: Any) -> Any:
        return _run_sync(self.redis, self.scripts, op(self, *args, **kwargs))

    return method


def _async_method(name: str) -> Callable[..., Any]:
    op = getattr(_Ops, name)

    @functools.wraps(op)
    async def method(self: AsyncQueueManager, *args: Any, **kwargs: Any) -> Any:
        return await _run_async(self.redis, self.scripts, op(self, *args, **kwargs))

    return method


class QueueManager(_Ops):
    """Blocking producer/admin API.

    :param settings: defaults to :meth:`Settings.from_env`.
    :param specs: queue specs known locally (validates payloads; such queues need no live worker).
    :param strict: refuse queues that no spec declares and no worker has announced.
    """

    def __init__(self, settings: Settings | None = None, specs: Iterable[QueueSpec] | None = None,
                 *, strict: bool = True, client: redis.Redis | None = None) -> None:
        super().__init__(settings, specs, strict=strict)
        self.redis = client or make_client(self.settings)
        self.scripts = Scripts(self.redis)

    def job_dict(self, queue: str, job_id: str) -> dict[str, Any]:
        job = self.get_job(queue, job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r} in queue {queue!r}")
        return job_to_dict(job)

    def shutdown(self) -> None:
        self.redis.close()

    close = shutdown

    def __enter__(self) -> QueueManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


class AsyncQueueManager(_Ops):
    """The same API as :class:`QueueManager`, with coroutine methods."""

    def __init__(self, settings: Settings | None = None, specs: Iterable[QueueSpec] | None = None,
                 *, strict: bool = True, client: redis.asyncio.Redis | None = None) -> None:
        super().__init__(settings, specs, strict=strict)
        self.redis = client or make_client(self.settings, asyncio=True)
        self.scripts = Scripts(self.redis)

    async def shutdown(self) -> None:
        await self.redis.aclose()

    close = shutdown

    async def __aenter__(self) -> AsyncQueueManager:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()


for _name in _PUBLIC:
    setattr(QueueManager, _name, _sync_method(_name))
    setattr(AsyncQueueManager, _name, _async_method(_name))

__all__ = ["STATES", "AsyncQueueManager", "QueueManager", "make_client", "validate_options"]
