"""Periodic jobs: ``Schedule`` definitions, their ticks, the manager's schedule operations and the
worker's ticking task.

Exactly one job per tick, however many workers run: a tick's job id is ``<schedule>-<tick ms>``,
and ``tick.lua`` moves the schedule's last tick forward (compare-and-set) and enqueues the job in
one single-slot script, so the workers that lose the race change nothing. Definitions, last ticks
and pause flags live in the queue's ``schedules`` hash, under its hash tag. Tick times are computed
here (cron by cronsim, time zones by zoneinfo) from Redis time, never from a worker's clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
from collections.abc import Generator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import attrs

from .errors import EnqueueError, InvalidOptions, JobqError

if TYPE_CHECKING:
    from .jobs import Job
    from .worker import Worker

log = logging.getLogger(__name__)

SCHEDULE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
CatchUp = Literal["latest", "all", "none"]
CATCH_UP = ("latest", "all", "none")
MAX_CATCH_UP = 100  # catch_up="all" enqueues at most this many missed ticks, the newest
MISSED_AFTER = 60.0  # catch_up="none": a tick run later than min(this, half its period) counts as missed
MAX_DATA_BYTES = 64 * 1024
MAX_SCHEDULES = 1000  # per queue, about (schedule.lua counts hash fields)
REFRESH = 5.0  # seconds between the worker's reads of the definitions (schedules added at run time)
TICKING_MS = 5000  # how long one worker may hold a queue's ticking flag (taken over after a crash)
LOOK_AGAIN_MS = 50  # a worker that found the flag taken re-reads the state this much later
BATCH_JOBS = 500  # tick jobs per script

Op = Generator[Any, Any, Any]


class ScheduleNotFound(JobqError):
    """No schedule of that name on that queue."""


def _check_name(_inst: Any, _attr: Any, value: str) -> None:
    if not isinstance(value, str) or not SCHEDULE_NAME.fullmatch(value):
        raise InvalidOptions(f"schedule name {value!r} must match {SCHEDULE_NAME.pattern}")


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidOptions(f"timezone {name!r} is not a known IANA time zone") from None


@attrs.frozen(kw_only=True, eq=True)
class Schedule:
    """A job enqueued on a cron expression or every N seconds.

    :param name: unique per queue (``[A-Za-z0-9_-]{1,64}``); tick jobs get the id ``<name>-<tick ms>``.
    :param cron: a 5-field cron expression (6 with seconds first), read in ``timezone``.
    :param every: seconds between ticks (at least 1), counted from the Unix epoch, so ``every=3600``
        fires on the hour whatever the time zone.
    :param data: the job data of every tick (JSON, at most 64 KiB).
    :param timezone: the IANA zone ``cron`` is read in; daylight saving follows Debian cron (a time
        skipped by the clock change runs right after it, a repeated one runs once).
    :param catch_up: ticks missed while no worker ran: ``latest`` runs the newest once (default),
        ``all`` runs each (at most ``MAX_CATCH_UP``, the newest), ``none`` runs none.
    :param options: job options of every tick (``priority``, ``retries``, ``backoff``, ``timeout``).
    """

    name: str = attrs.field(validator=_check_name)
    cron: str | None = None
    every: float | None = None
    data: Any = attrs.field(factory=dict)
    timezone: str = "UTC"
    catch_up: CatchUp = "latest"
    options: Mapping[str, Any] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        where = f"schedule {self.name}"
        if (self.cron is None) == (self.every is None):
            raise InvalidOptions(f"{where}: give exactly one of cron= and every=")
        if self.every is not None:
            e = self.every
            if isinstance(e, bool) or not isinstance(e, int | float) or math.isnan(e) or not 1 <= e <= 366 * 86400:
                raise InvalidOptions(f"{where}: every={e!r} must be a number of seconds from 1 to 31622400")
        if self.catch_up not in CATCH_UP:
            raise InvalidOptions(f"{where}: catch_up={self.catch_up!r} must be one of {', '.join(CATCH_UP)}")
        if not isinstance(self.timezone, str):
            raise InvalidOptions(f"{where}: timezone must be a string")
        try:
            _zone(self.timezone)
        except InvalidOptions as exc:
            raise InvalidOptions(f"{where}: {exc}") from None
        if self.cron is not None:
            from cronsim import CronSim, CronSimError

            if not isinstance(self.cron, str) or len(self.cron) > 200:
                raise InvalidOptions(f"{where}: cron must be a string of at most 200 characters")
            try:
                CronSim(self.cron, datetime(2000, 1, 1, tzinfo=UTC))
            except CronSimError as exc:
                raise InvalidOptions(f"{where}: cron {self.cron!r} is invalid: {exc}") from None
        try:
            raw = json.dumps(self.data, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidOptions(f"{where}: data is not JSON-serialisable: {exc}") from None
        if len(raw) > MAX_DATA_BYTES:
            raise InvalidOptions(f"{where}: data is {len(raw)} bytes, over {MAX_DATA_BYTES}")
        if not isinstance(self.options, Mapping):
            raise InvalidOptions(f"{where}: options must be a mapping")
        from .queue import validate_options

        if "delay" in self.options or "name" in self.options:
            raise InvalidOptions(f"{where}: options take no delay or name (the schedule sets them)")
        try:
            validate_options(self.options)
        except InvalidOptions as exc:
            raise InvalidOptions(f"{where}: {exc}") from None

    def check_no_secrets(self, secret_fields: tuple[str, ...]) -> None:
        """Refuse data holding the queue's secret fields: a definition is stored and listed as it is."""
        held = sorted(set(secret_fields) & set(self.data)) if isinstance(self.data, dict) else []
        if held:
            raise InvalidOptions(f"schedule {self.name}: data holds secret field(s) {', '.join(held)}, which a "
                                 "schedule would store in clear; pass a reference the handler resolves instead")

    # -- ticks (Unix milliseconds) -------------------------------------------------------------
    @property
    def _every_ms(self) -> int:
        return max(round((self.every or 0) * 1000), 1)

    def _cron(self, after_ms: int, reverse: bool = False) -> Any:
        from cronsim import CronSim

        start = datetime.fromtimestamp(after_ms // 1000, _zone(self.timezone))
        return CronSim(self.cron or "", start, reverse=reverse)

    def next_ticks(self, after_ms: int, n: int = 1) -> list[int]:
        """The ``n`` ticks strictly after ``after_ms``."""
        if self.every is not None:
            e = self._every_ms
            first = (after_ms // e + 1) * e
            return [first + i * e for i in range(n)]
        it = self._cron(after_ms)
        return [int(next(it).timestamp()) * 1000 for _ in range(n)]

    def ticks_between(self, after_ms: int, until_ms: int, limit: int) -> list[int]:
        """The newest ``limit`` ticks ``t`` with ``after_ms < t <= until_ms``, oldest first."""
        if until_ms <= after_ms or limit <= 0:
            return []
        if self.every is not None:
            e = self._every_ms
            hi, lo = until_ms // e, after_ms // e + 1
            return [k * e for k in range(max(lo, hi - limit + 1), hi + 1)]
        out: list[int] = []
        it = self._cron(until_ms + 1000, reverse=True)  # reverse is strict: start a second later
        for _ in range(2 * limit + 8):  # bounded, whatever the expression
            t = int(next(it).timestamp()) * 1000
            if t > until_ms:
                continue
            if t <= after_ms or len(out) == limit:
                break
            out.append(t)
        return out[::-1]

    def plan(self, last_ms: int, now_ms: int) -> tuple[list[int], int]:
        """The ticks to enqueue at ``now_ms`` after ``last_ms`` was done, and the new last tick."""
        limit = MAX_CATCH_UP if self.catch_up == "all" else 1
        ticks = self.ticks_between(last_ms, now_ms, limit)
        if not ticks:
            return [], last_ms
        newest = ticks[-1]
        if self.catch_up == "none":
            period = self.next_ticks(newest)[0] - newest
            if now_ms - newest > min(MISSED_AFTER * 1000, period / 2):
                return [], newest
        return ticks, newest

    def job_id(self, tick_ms: int) -> str:
        return f"{self.name}-{tick_ms}"

    def to_json(self) -> str:
        return json.dumps(attrs.asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Schedule:
        d = json.loads(raw)
        if not isinstance(d, dict):
            raise InvalidOptions("a schedule definition is a JSON object")
        known = {a.name for a in attrs.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@attrs.frozen(kw_only=True)
class ScheduleInfo:
    """A schedule as stored: its definition, state and next runs (Unix seconds)."""

    queue: str
    schedule: Schedule
    paused: bool
    last_tick: float | None
    next_runs: list[float]

    def to_dict(self) -> dict[str, Any]:
        return {"queue": self.queue, **attrs.asdict(self.schedule), "paused": self.paused,
                "last_tick": self.last_tick, "next_runs": self.next_runs}


@attrs.frozen
class _Stored:
    raw: str
    schedule: Schedule | None
    last: str
    paused: bool


def _parse_hash(queue: str, h: Mapping[bytes, bytes],
                cache: dict[str, Schedule | None] | None = None) -> dict[str, _Stored]:
    """The schedules hash (``def:<name>``, ``last:<name>``, ``paused:<name>``) by schedule name.
    ``cache`` keeps parsed definitions across calls, so an unreadable one is logged once."""
    fields = {k.decode(): v.decode() for k, v in h.items()}
    out = {}
    for key, raw in fields.items():
        if not key.startswith("def:"):
            continue
        name = key[4:]
        if cache is not None and raw in cache:
            sched = cache[raw]
        else:
            try:
                sched = Schedule.from_json(raw)
            except (JobqError, ValueError, TypeError) as exc:
                log.error("schedule %s/%s: unreadable definition skipped: %s", queue, name, exc)
                sched = None
            if cache is not None:
                if len(cache) > 4 * MAX_SCHEDULES:
                    cache.clear()
                cache[raw] = sched
        out[name] = _Stored(raw, sched, fields.get(f"last:{name}", ""), fields.get(f"paused:{name}") == "1")
    return out


def _check_names(queue: str, name: str | None = None) -> None:
    from .errors import UnknownQueue
    from .spec import QUEUE_NAME

    if not isinstance(queue, str) or not QUEUE_NAME.fullmatch(queue):
        raise UnknownQueue(f"invalid queue name {queue!r}")
    if name is not None:
        _check_name(None, None, name)


def _now_ms(reply: Any) -> int:
    return int(reply[0]) * 1000 + int(reply[1]) // 1000


class ScheduleOps:
    """The manager's schedule operations (mixed into ``_Ops``; same generator shape)."""

    def _schedule_call(self, queue: str, op: str, name: str, definition: str = "") -> Any:
        from .queue import _Script

        _check_names(queue, name)
        return _Script("schedule", [self.keys(queue).schedules], [op, name, definition, MAX_SCHEDULES])  # type: ignore[attr-defined]

    def add_schedule(self, queue: str, schedule: Schedule) -> Op:
        """Add or replace ``schedule`` on ``queue``; True when it is new or changed.

        A new schedule's first tick is the first one after now; a replaced one keeps its last tick.
        """
        from .queue import _Ops
        from .serialization import structure_payload

        if not isinstance(schedule, Schedule):
            raise InvalidOptions("add_schedule takes a jobq.Schedule")
        yield from _Ops._check_queue(self, queue)  # type: ignore[arg-type]
        spec = self.specs.get(queue)  # type: ignore[attr-defined]
        if spec is not None:
            schedule.check_no_secrets(spec.secret_fields)
            if spec.payload is not None:
                structure_payload(schedule.data, spec.payload)
        res = yield self._schedule_call(queue, "set", schedule.name, schedule.to_json())
        if res == -1:
            raise InvalidOptions(f"queue {queue!r} has too many schedules (about {MAX_SCHEDULES})")
        return bool(res)

    def remove_schedule(self, queue: str, name: str) -> Op:
        """Remove a schedule and its state; False when there was none."""
        res = yield self._schedule_call(queue, "remove", name)
        return bool(res)

    def pause_schedule(self, queue: str, name: str) -> Op:
        """Stop ticking ``name``; its ticks until :meth:`resume_schedule` are skipped."""
        if not (yield self._schedule_call(queue, "pause", name)):
            raise ScheduleNotFound(f"no schedule {name!r} on queue {queue!r}")

    def resume_schedule(self, queue: str, name: str) -> Op:
        """Tick ``name`` again from now (ticks due while paused are not run)."""
        if not (yield self._schedule_call(queue, "resume", name)):
            raise ScheduleNotFound(f"no schedule {name!r} on queue {queue!r}")

    def trigger_schedule(self, queue: str, name: str) -> Op:
        """Enqueue one run of ``name`` now, outside its ticks; returns the job."""
        from .queue import _Ops

        _check_names(queue, name)
        raw = yield ("HGET", self.keys(queue).schedules, f"def:{name}")  # type: ignore[attr-defined]
        if raw is None:
            raise ScheduleNotFound(f"no schedule {name!r} on queue {queue!r}")
        s = Schedule.from_json(raw)
        job: Job = yield from _Ops.add_job(self, queue, f"{name}-run-{os.urandom(6).hex()}", s.data,  # type: ignore[arg-type]
                                           name=name, **s.options)
        return job

    def list_schedules(self, queue: str | None = None, runs: int = 3) -> Op:
        """Every schedule of ``queue`` (default: of every known queue) with its next ``runs`` runs."""
        from .queue import _Ops, _Pipe

        if queue is not None:
            _check_names(queue)
        runs = max(0, min(int(runs), 100))
        queues = [queue] if queue is not None else (yield from _Ops.list_queues(self))  # type: ignore[arg-type]
        if not queues:
            return []
        now = _now_ms((yield ("TIME",)))  # apart: a cluster pipeline refuses keyless commands
        replies = yield _Pipe([("HGETALL", self.keys(q).schedules) for q in queues])  # type: ignore[attr-defined]
        out = []
        for q, h in zip(queues, replies, strict=True):
            for _name, st in sorted(_parse_hash(q, h).items()):
                if st.schedule is None:
                    continue
                last = int(st.last) if st.last else None
                nxt = [] if st.paused else st.schedule.next_ticks(max(now, last or 0), runs) if runs else []
                out.append(ScheduleInfo(queue=q, schedule=st.schedule, paused=st.paused,
                                        last_tick=last / 1000 if last else None, next_runs=[t / 1000 for t in nxt]))
        return out

    def _tick(self, queue: str, due: list[tuple[_Stored, list[int], int]]) -> Op:
        """Enqueue the due ticks of stored schedules and move each one's last tick, in one script.

        ``due`` holds ``(stored, ticks, new last tick)`` per schedule. Returns ``(status, enqueued)``:
        ``OK``, or ``RACE``/``PAUSED``/``GONE`` when some schedule's stored state is no longer the one
        planned with (another worker ticked first) and nothing was written.
        """
        from .queue import _Ops, _Script

        prepared, guard = [], []
        for stored, ticks, new_last in due:
            s = stored.schedule
            assert s is not None
            prepared += [_Ops._prepare(self, queue, s.job_id(t), s.data, {**s.options, "name": s.name})  # type: ignore[arg-type]
                         for t in ticks]
            guard += [s.name, stored.raw, stored.last, new_last]
        yield from _Ops._upload(self, prepared)  # type: ignore[arg-type]
        call = _Ops._enqueue_call(self, queue, prepared)  # type: ignore[arg-type]
        res = yield _Script("tick", [*call.keys, self.keys(queue).schedules],  # type: ignore[attr-defined]
                            [*call.args, *guard, len(due)])
        if isinstance(res[0], bytes):
            return res[0].decode(), 0
        return "OK", sum(1 for state in res[1:] if not state)


class Scheduler:
    """The worker's ticking task, one per process for every queue it serves: sleeps until the next
    due tick (re-reading the definitions every ``REFRESH`` seconds), then runs ``tick.lua``."""

    def __init__(self, worker: Worker) -> None:
        from .queue import _Ops

        self.w = worker
        self.ops = _Ops(worker.settings, worker.specs, strict=False)
        self.queues = [s.name for s in worker.specs]
        self.ticks = 0  # ticks this process enqueued (for tests and the bench)
        self.parsed: dict[str, Schedule | None] = {}  # definition JSON -> Schedule

    async def _run(self, op: Op) -> Any:
        from .queue import _run_async

        return await _run_async(self.w.client, self.w.scripts, op)

    async def run(self) -> None:
        registered = False
        backoff = 0.5
        while not self.w._closed:
            try:
                if not registered:
                    await self.register()
                    registered = True
                wait = await self.round()
                backoff = 0.5
            except Exception as exc:  # Redis away, or a bug: keep ticking the others later
                import redis

                wait, backoff = backoff, min(backoff * 2, REFRESH)
                log.log(logging.WARNING if isinstance(exc, redis.RedisError) else logging.ERROR,
                        "schedules: %s: %s; retrying in %.1fs", type(exc).__name__, exc, wait,
                        exc_info=not isinstance(exc, redis.RedisError))
            await asyncio.sleep(wait)

    async def register(self) -> None:
        """Store the schedules the served specs declare; drop ones an earlier version declared."""
        for spec in self.w.specs:
            declared = {s.name for s in spec.schedules}
            for s in spec.schedules:
                await self._run(_single(self.ops._schedule_call(spec.name, "set", s.name, s.to_json())))
            h = await self.w.client.hgetall(self.ops.keys(spec.name).schedules)
            for name in _parse_hash(spec.name, h, self.parsed):
                if name not in declared and f"declared:{name}".encode() in h:
                    await self.w.client.hdel(self.ops.keys(spec.name).schedules, f"def:{name}", f"last:{name}",
                                             f"paused:{name}", f"declared:{name}")
            if declared:
                await self.w.client.hset(self.ops.keys(spec.name).schedules,
                                         mapping={f"declared:{n}": "1" for n in declared})

    async def round(self) -> float:
        """Tick whatever is due; return the seconds to sleep until the next due tick.

        Of the workers waking for the same ticks, the one that takes the queue's ``ticking`` flag
        (``SET NX PX``) runs them, in as few scripts as it can, and the others look again shortly;
        the flag only saves them the work, the compare-and-set in ``tick.lua`` is what keeps each
        tick to one job."""
        client = self.w.client
        pipe = client.pipeline(transaction=False)
        for q in self.queues:
            pipe.hgetall(self.ops.keys(q).schedules)
        replies = await pipe.execute()
        now = _now_ms(await client.time())  # apart: a cluster pipeline refuses keyless commands
        due = now + int(REFRESH * 1000)
        for q, h in zip(self.queues, replies, strict=True):
            work: list[tuple[_Stored, list[int], int]] = []
            for st in _parse_hash(q, h, self.parsed).values():
                s = st.schedule
                if s is None or st.paused:
                    continue
                last = int(st.last) if st.last else now
                ticks, new_last = s.plan(last, now)
                if new_last != last or not st.last:
                    work.append((st, ticks, new_last if st.last else now))
                due = min(due, s.next_ticks(max(now, new_last))[0])
            if not work:
                continue
            flag = self.ops.keys(q).ticking
            if not await client.set(flag, self.w.id, nx=True, px=TICKING_MS):
                due = min(due, now + LOOK_AGAIN_MS)  # another worker is on it: see what it left
                continue
            try:
                await self._tick_all(q, work)
            finally:
                await client.delete(flag)
        return max(due - now, 1) / 1000 + 0.002

    async def _tick_all(self, queue: str, work: list[tuple[_Stored, list[int], int]]) -> None:
        """One script per batch of up to ``BATCH_JOBS`` jobs; a batch refused as a whole (a schedule
        changed meanwhile) is retried one schedule at a time, so the others still tick."""
        batch: list[tuple[_Stored, list[int], int]] = []
        size = 0
        for item in work:
            if batch and size + len(item[1]) > BATCH_JOBS:
                await self._tick(queue, batch)
                batch, size = [], 0
            batch.append(item)
            size += len(item[1])
        if batch:
            await self._tick(queue, batch)

    async def _tick(self, queue: str, batch: list[tuple[_Stored, list[int], int]]) -> None:
        try:
            status, n = await self._run(self.ops._tick(queue, batch))
        except EnqueueError as exc:  # data a payload class refuses (nothing was written)
            if len(batch) == 1:
                st, _ticks, new_last = batch[0]
                log.error("schedule %s/%s: tick skipped: %s", queue, st.schedule.name if st.schedule else "?", exc)
                await self._run(self.ops._tick(queue, [(st, [], new_last)]))
                return
            status, n = "SPLIT", 0
        if status == "OK":
            self.ticks += n
        elif len(batch) > 1:  # find the schedule at fault, tick the others
            for item in batch:
                await self._tick(queue, [item])


def _single(call: Any) -> Op:
    result = yield call
    return result


def tick_at(ms: int, timezone: str = "UTC") -> str:
    """A tick time for humans (``jobq schedules list``)."""
    return (datetime.fromtimestamp(ms / 1000, _zone(timezone))).isoformat(timespec="seconds")

