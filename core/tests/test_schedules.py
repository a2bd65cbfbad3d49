"""Schedules: tick arithmetic (cron, time zones, daylight saving), the stored state on real Redis,
exactly one job per tick with three worker processes, and the catch-up policies."""

import itertools
import json
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import attrs
import pytest
import redis
from jobq import (
    AsyncQueueManager,
    InvalidOptions,
    QueueManager,
    QueueSpec,
    Schedule,
    ScheduleNotFound,
    UnknownQueue,
)
from jobq.keys import QueueKeys
from jobq.schedules import MAX_CATCH_UP
from jobq.testing import cli_invoker, delete_prefix, make_test_settings, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_crash import Fleet  # noqa: E402


def ms(*args, tz=UTC):
    return int(datetime(*args, tzinfo=tz).timestamp() * 1000)


def utc(t_ms):
    return datetime.fromtimestamp(t_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


# -- definitions and tick arithmetic (no Redis) ---------------------------------------------------
@pytest.mark.parametrize("kwargs, field", [
    (dict(), "exactly one of cron= and every="),
    (dict(cron="* * * * *", every=5), "exactly one"),
    (dict(every=0.5), "every=0.5"),
    (dict(every=float("nan")), "every=nan"),
    (dict(cron="61 * * * *"), "cron '61 * * * *' is invalid"),
    (dict(every=5, timezone="Mars/Olympus"), "timezone 'Mars/Olympus'"),
    (dict(every=5, catch_up="some"), "catch_up='some'"),
    (dict(every=5, data={"x": object()}), "data is not JSON"),
    (dict(every=5, data={"x": "y" * 70_000}), "over 65536"),
    (dict(every=5, options={"delay": 3}), "no delay"),
    (dict(every=5, options={"retries": -1}), "retries=-1"),
])
def test_bad_definitions_name_the_field(kwargs, field):
    with pytest.raises(InvalidOptions, match="schedule s1") as e:
        Schedule(name="s1", **kwargs)
    assert field in str(e.value)
    with pytest.raises(InvalidOptions, match="schedule name"):
        Schedule(name="no spaces", every=5)
    with pytest.raises(InvalidOptions, match="schedule name"):
        Schedule(name="nightly\n", every=5)


def test_every_ticks_count_from_the_epoch():
    s = Schedule(name="e", every=10)
    assert s.next_ticks(ms(2026, 1, 1, 0, 0, 5), 2) == [ms(2026, 1, 1, 0, 0, 10), ms(2026, 1, 1, 0, 0, 20)]
    assert s.next_ticks(ms(2026, 1, 1, 0, 0, 10)) == [ms(2026, 1, 1, 0, 0, 20)]  # strictly after
    # (after, until]: the newest `limit` ticks, oldest first
    assert s.ticks_between(ms(2026, 1, 1, 0, 0, 10), ms(2026, 1, 1, 0, 0, 40), 99) == [
        ms(2026, 1, 1, 0, 0, 20), ms(2026, 1, 1, 0, 0, 30), ms(2026, 1, 1, 0, 0, 40)]
    assert s.ticks_between(0, ms(2026, 1, 1, 0, 0, 40), 2) == [ms(2026, 1, 1, 0, 0, 30), ms(2026, 1, 1, 0, 0, 40)]


def test_catch_up_policies_plan():
    last, now = ms(2026, 1, 1, 0, 0), ms(2026, 1, 1, 0, 10, 0, 200_000)  # 10 minutes missed, now 0.2 s late
    minute = Schedule(name="m", cron="* * * * *", catch_up="all")
    ticks, new_last = minute.plan(last, now)
    assert [utc(t) for t in ticks] == [f"2026-01-01 00:{m:02d}" for m in range(1, 11)] and new_last == ticks[-1]
    latest = Schedule(name="m", cron="* * * * *")
    assert latest.plan(last, now) == ([ms(2026, 1, 1, 0, 10)], ms(2026, 1, 1, 0, 10))
    none = Schedule(name="m", cron="* * * * *", catch_up="none")
    assert none.plan(last, now) == ([ms(2026, 1, 1, 0, 10)], ms(2026, 1, 1, 0, 10))  # the current tick runs
    late = now + 40_000  # 40 s past the 00:10 tick: over half the period, it was missed
    assert none.plan(last, late) == ([], ms(2026, 1, 1, 0, 10))
    assert latest.plan(last, late) == ([ms(2026, 1, 1, 0, 10)], ms(2026, 1, 1, 0, 10))
    assert latest.plan(ms(2026, 1, 1, 0, 10), late) == ([], ms(2026, 1, 1, 0, 10))  # nothing new
    # "all" is bounded: a year of missed seconds is the newest MAX_CATCH_UP ticks
    ticks, new_last = Schedule(name="s", every=1, catch_up="all").plan(0, now)
    assert len(ticks) == MAX_CATCH_UP and ticks[-1] == new_last == now // 1000 * 1000


def test_cron_in_a_time_zone_follows_daylight_saving():
    paris = "Europe/Paris"
    nine = Schedule(name="n", cron="0 9 * * *", timezone=paris)
    assert utc(nine.next_ticks(ms(2026, 1, 15))[0]) == "2026-01-15 08:00"  # CET, UTC+1
    assert utc(nine.next_ticks(ms(2026, 7, 15))[0]) == "2026-07-15 07:00"  # CEST, UTC+2
    # spring forward, 2026-03-29: 02:00 -> 03:00 local; 02:30 does not exist and runs at 03:00 once
    half_two = Schedule(name="h", cron="30 2 * * *", timezone=paris)
    runs = half_two.next_ticks(ms(2026, 3, 28, 12), 3)
    assert [utc(t) for t in runs] == ["2026-03-29 01:00", "2026-03-30 00:30", "2026-03-31 00:30"]
    # fall back, 2026-10-25: 03:00 -> 02:00 local; 02:30 happens twice and runs once
    runs = half_two.next_ticks(ms(2026, 10, 24, 12), 3)
    assert [utc(t) for t in runs] == ["2026-10-25 00:30", "2026-10-26 01:30", "2026-10-27 01:30"]
    # an hourly schedule runs every real hour: 25 runs on the long day, 23 on the short one, no repeats
    hourly = Schedule(name="h", cron="0 * * * *", timezone=paris)
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(paris)
    long_day = hourly.ticks_between(ms(2026, 10, 25, tz=tz) - 1, ms(2026, 10, 26, tz=tz) - 1, 1000)
    assert len(long_day) == 25 and len(set(long_day)) == 25
    assert all(b - a == 3_600_000 for a, b in itertools.pairwise(long_day))
    short_day = hourly.ticks_between(ms(2026, 3, 29, tz=tz) - 1, ms(2026, 3, 30, tz=tz) - 1, 1000)
    assert len(short_day) == 23
    # ticks_between walks back from `until` and agrees with next_ticks walking forward
    assert hourly.ticks_between(ms(2026, 10, 24, 22), ms(2026, 10, 25, 3), 100) == \
        hourly.next_ticks(ms(2026, 10, 24, 22), 5)
    assert half_two.ticks_between(ms(2026, 3, 27), ms(2026, 3, 31), 10) == half_two.next_ticks(ms(2026, 3, 27), 4)
    quarter = Schedule(name="q", cron="*/15 * * * *", timezone=paris)
    for start in (ms(2026, 3, 29, 0, 30), ms(2026, 10, 25, 0, 0)):
        assert quarter.ticks_between(start, start + 3_600_000, 10) == quarter.next_ticks(start, 4)


def test_spec_declares_schedules():
    s = Schedule(name="nightly", cron="0 3 * * *", timezone="Europe/Paris", data={"k": 1})
    spec = QueueSpec(name="q", handler=lambda job: None, schedules=[s])
    assert spec.schedules == (s,)
    assert Schedule.from_json(s.to_json()) == s
    with pytest.raises(InvalidOptions, match="repeat"):
        QueueSpec(name="q", handler=lambda job: None, schedules=[s, s])
    with pytest.raises(InvalidOptions, match=r"data holds secret field\(s\) k, which a schedule would store in clear"):
        QueueSpec(name="q", handler=lambda job: None, secret_fields=("k",), schedules=[s])


# -- stored state, on the real Redis ---------------------------------------------------------------
SPEC = QueueSpec(name="sched", handler=lambda job: job.data, concurrency=2)


def test_manager_add_list_pause_resume_trigger_remove(jobq_settings):
    m = QueueManager(jobq_settings, [SPEC])
    s = Schedule(name="five", every=300, data={"n": 5}, options={"priority": 2})
    assert m.add_schedule("sched", s) is True
    assert m.add_schedule("sched", s) is False  # unchanged
    [info] = m.list_schedules("sched", runs=2)
    assert info.schedule == s and not info.paused and info.last_tick is not None
    a, b = info.next_runs
    assert b - a == 300 and a % 300 == 0 and a > info.last_tick
    assert [i.schedule.name for i in m.list_schedules()] == ["five"]  # every known queue
    m.pause_schedule("sched", "five")
    assert m.list_schedules("sched")[0].paused and m.list_schedules("sched")[0].next_runs == []
    m.resume_schedule("sched", "five")
    job = m.trigger_schedule("sched", "five")
    assert job.id.startswith("five-run-") and job.data == {"n": 5} and job.options.priority == 2
    assert m.get_job("sched", job.id).name == "five"
    secretive = QueueManager(jobq_settings, [attrs.evolve(SPEC, secret_fields=("token",))])
    with pytest.raises(InvalidOptions, match="secret field"):
        secretive.add_schedule("sched", Schedule(name="leak", every=60, data={"token": "hunter2"}))
    secretive.shutdown()
    with pytest.raises(ScheduleNotFound):
        m.pause_schedule("sched", "nope")
    with pytest.raises(ScheduleNotFound):
        m.trigger_schedule("sched", "nope")
    with pytest.raises(InvalidOptions, match="schedule name"):
        m.remove_schedule("sched", "bad name")
    with pytest.raises(UnknownQueue, match="invalid queue name"):
        m.list_schedules("{other}")
    assert m.remove_schedule("sched", "five") is True and m.remove_schedule("sched", "five") is False
    assert m.list_schedules("sched") == []
    m.shutdown()


async def test_async_manager_schedules(jobq_settings):
    async with AsyncQueueManager(jobq_settings, [SPEC]) as m:
        assert await m.add_schedule("sched", Schedule(name="c", cron="*/5 * * * *"))
        [info] = await m.list_schedules("sched")
        assert len(info.next_runs) == 3 and all(int(t) % 300 == 0 for t in info.next_runs)
        assert await m.remove_schedule("sched", "c")


def test_tick_script_enqueues_once_per_tick(jobq_settings):
    """Two workers planning the same tick from the same state: the second changes nothing."""
    from jobq.queue import _run_sync
    from jobq.schedules import _parse_hash

    m = QueueManager(jobq_settings, [SPEC])
    s = Schedule(name="t", every=60, data={"x": 1})
    m.add_schedule("sched", s)
    k = QueueKeys(jobq_settings.prefix, "sched")
    stored = _parse_hash("sched", m.redis.hgetall(k.schedules))["t"]
    tick = s.next_ticks(int(stored.last))[0]
    assert _run_sync(m.redis, m.scripts, m._tick("sched", [(stored, [tick], tick)])) == ("OK", 1)
    assert _run_sync(m.redis, m.scripts, m._tick("sched", [(stored, [tick], tick)])) == ("RACE", 0)
    job = m.get_job("sched", f"t-{tick}")
    assert job.state == "waiting" and job.data == {"x": 1} and job.name == "t"
    assert m.get_queue_metrics("sched")["waiting"] == 1
    # many contenders at once on the same planned state: one wins
    nxt = tick + 60_000
    stored = _parse_hash("sched", m.redis.hgetall(k.schedules))["t"]
    barrier = threading.Barrier(8)

    def contend():
        barrier.wait()
        return _run_sync(m.redis, m.scripts, m._tick("sched", [(stored, [nxt], nxt)]))

    with ThreadPoolExecutor(8) as pool:
        outcomes = sorted(f.result() for f in [pool.submit(contend) for _ in range(8)])
    assert outcomes == [("OK", 1)] + [("RACE", 0)] * 7
    assert m.get_queue_metrics("sched")["waiting"] == 2
    tick = nxt
    m.pause_schedule("sched", "t")
    fresh = _parse_hash("sched", m.redis.hgetall(k.schedules))["t"]
    assert _run_sync(m.redis, m.scripts, m._tick("sched", [(fresh, [tick + 60_000], tick + 60_000)])) == ("PAUSED", 0)
    m.add_schedule("sched", Schedule(name="t", every=120))  # redefined: plans made before do nothing
    assert _run_sync(m.redis, m.scripts, m._tick("sched", [(fresh, [tick + 60_000], tick + 60_000)])) == ("GONE", 0)
    assert m.get_queue_metrics("sched")["waiting"] == 2
    m.shutdown()


def test_tick_batch_is_all_or_nothing(jobq_settings):
    from jobq.queue import _run_sync
    from jobq.schedules import _parse_hash

    m = QueueManager(jobq_settings, [SPEC])
    k = QueueKeys(jobq_settings.prefix, "sched")
    for name in ("a", "b"):
        m.add_schedule("sched", Schedule(name=name, every=60))
    st = _parse_hash("sched", m.redis.hgetall(k.schedules))
    ta, tb = (st[n].schedule.next_ticks(int(st[n].last))[0] for n in ("a", "b"))
    stale_b = attrs.evolve(st["b"], last="1")
    assert _run_sync(m.redis, m.scripts, m._tick("sched", [(st["a"], [ta], ta), (stale_b, [tb], tb)])) == ("RACE", 0)
    assert m.get_queue_metrics("sched")["waiting"] == 0 and m.redis.hget(k.schedules, "last:a") == st["a"].last.encode()
    assert _run_sync(m.redis, m.scripts, m._tick("sched", [(st["a"], [ta], ta), (st["b"], [tb], tb)])) == ("OK", 2)
    assert {j for j in ("a", "b") if m.get_job("sched", f"{j}-{ta if j == 'a' else tb}")} == {"a", "b"}
    m.shutdown()


@attrs.frozen(kw_only=True)
class Count:
    n: int


def test_a_tick_the_payload_class_refuses_is_skipped_and_the_others_run(jobq_settings, jobq_harness, caplog):
    """Data stored before the payload class changed: that schedule's ticks are skipped, loudly."""
    spec = QueueSpec(name="sched", handler=lambda job: job.data.n, payload=Count)
    loose = QueueManager(jobq_settings, strict=False)
    loose.add_schedule("sched", Schedule(name="old", every=1, data={"count": 1}))
    loose.add_schedule("sched", Schedule(name="new", every=1, data={"n": 2}))
    loose.shutdown()
    jobq_harness.start(spec)
    m = jobq_harness.manager
    wait_until(lambda: m.get_queue_metrics("sched")["completed"] >= 2, 10, message="ticks of 'new'")
    done = m.list_jobs("sched", "completed")
    assert {j.id.rsplit("-", 1)[0] for j in done} == {"new"} and {j.result for j in done} == {2}
    assert "schedule sched/old: tick skipped" in caplog.text and "n" in caplog.text
    wait_until(lambda: m.list_schedules("sched")[1].last_tick > m.list_schedules("sched")[1].next_runs[0] - 2, 5,
               message="the skipped schedule's last tick moves on")


def test_bad_stored_definition_is_skipped(jobq_settings, jobq_harness, caplog):
    """A definition the worker cannot read is logged and skipped; the others keep ticking."""
    k = QueueKeys(jobq_settings.prefix, "sched")
    r = jobq_harness.manager.redis
    r.hset(k.schedules, mapping={"def:broken": '{"name": "broken", "every": 0}', "last:broken": "0"})
    jobq_harness.manager.specs["sched"] = SPEC
    jobq_harness.manager.add_schedule("sched", Schedule(name="ok", every=1))
    jobq_harness.start(SPEC)
    wait_until(lambda: jobq_harness.manager.get_queue_metrics("sched")["completed"] >= 1, 10, message="a tick ran")
    assert "schedule sched/broken: unreadable definition skipped" in caplog.text


# -- worker processes ------------------------------------------------------------------------------
@pytest.fixture
def fleet_settings(tmp_path):
    s = make_test_settings(tmp_path)
    yield s
    c = redis.Redis.from_url(s.redis_url)
    delete_prefix(c, s.prefix)
    c.close()


@pytest.mark.slow
def test_three_worker_processes_one_job_per_tick_and_catch_up_after_all_died(fleet_settings, tmp_path):
    """Three workers tick two schedules every second (catch_up latest and all); all three are killed,
    stay down 3 s, and three new ones start: one job per tick throughout, missed ticks per policy."""
    fleet = Fleet(fleet_settings, tmp_path / "ledger")
    m = QueueManager(fleet_settings, strict=False)

    def ticks(name):
        added = [e["jobId"] for e in m.read_events("ticker", count=10_000)
                 if e["event"] == "added" and e["jobId"].startswith(f"{name}-")]
        assert len(added) == len(set(added)), f"a tick of {name} was enqueued twice: {added}"
        return sorted(int(i.rsplit("-", 1)[1]) for i in added)

    def redis_ms():
        sec, usec = m.redis.time()
        return sec * 1000 + usec // 1000

    try:
        for _ in range(3):
            fleet.spawn("ticker")
        wait_until(lambda: len(ticks("beat")) >= 3, 10, message="3 ticks")
        started = [e["id"] for e in fleet.entries() if e["event"] == "start"]
        assert len(started) == len(set(started)), f"a tick ran twice: {started}"
        fleet.close()  # SIGKILL, all of them
        fleet.procs = []
        before = ticks("beat")[-1]
        down_until = redis_ms() + 3000
        wait_until(lambda: redis_ms() > down_until, 5, message="the outage")  # no worker runs meanwhile
        for _ in range(3):
            fleet.spawn("ticker")
        wait_until(lambda: ticks("beat")[-1] > down_until + 1000, 15, message="ticks after the restart")
        beat, every = ticks("beat"), ticks("all")
        missed = [t for t in range(before + 1000, down_until, 1000) if t not in beat]
        assert len(missed) >= 2, f"catch_up=latest ran the missed ticks: {beat}"
        assert every == list(range(every[0], every[-1] + 1000, 1000)), f"catch_up=all left a gap: {every}"
        assert every[0] <= before and every[-1] > down_until
    finally:
        fleet.close()
        m.shutdown()


@pytest.mark.parametrize("catch_up, expected", [("all", 3), ("latest", 1), ("none", 0)])
def test_catch_up_after_workers_were_down(jobq_settings, jobq_harness, catch_up, expected):
    """The schedule was last ticked 3 periods ago (no worker ran since): the policy decides."""
    period = 366 * 86400  # the longest: the newest missed tick is months old, surely past any grace
    s = Schedule(name="yearly", every=period, catch_up=catch_up)
    spec = QueueSpec(name="sched", handler=lambda job: "ran", schedules=[s])
    m = jobq_harness.manager
    m.specs["sched"] = spec
    m.add_schedule("sched", s)
    k = QueueKeys(jobq_settings.prefix, "sched")
    now = int(m.redis.time()[0]) * 1000
    p = period * 1000
    newest = now // p * p
    m.redis.hset(k.schedules, "last:yearly", newest - 3 * p)  # the state three missed ticks leave
    w = jobq_harness.start(spec)
    wait_until(lambda: m.redis.hget(k.schedules, "last:yearly") == str(newest).encode(), 10, message="catch-up")
    want = [f"yearly-{newest - i * p}" for i in range(expected)]
    wait_until(lambda: m.get_queue_metrics("sched")["completed"] == expected, 10, message="catch-up jobs")
    done = sorted(j.id for j in m.list_jobs("sched", "completed"))
    assert done == sorted(want)
    assert w.scheduler.ticks == expected


def test_cli_schedules(jobq_settings, monkeypatch):
    run = cli_invoker(jobq_settings, monkeypatch, SPEC)

    r = run("schedules", "add", "sched", "nightly", "--cron", "0 3 * * *", "--timezone", "Europe/Paris",
            "--data", '{"k": 1}', "--catch-up", "all")
    assert r.exit_code == 0 and "added sched/nightly" in r.output
    out = run("schedules", "list").output
    assert "sched/nightly  cron '0 3 * * *' Europe/Paris  catch-up all" in out
    assert out.count("  next  ") == 3 and "T03:00:00+0" in out  # local time with its offset
    rows = json.loads(run("schedules", "list", "sched", "--json", "--runs", "1").output)
    assert rows[0]["name"] == "nightly" and len(rows[0]["next_runs"]) == 1
    assert run("schedules", "pause", "sched", "nightly").exit_code == 0
    assert "PAUSED" in run("schedules", "list").output
    assert run("schedules", "resume", "sched", "nightly").exit_code == 0
    job_id = run("schedules", "trigger", "sched", "nightly").output.strip()
    assert job_id.startswith("nightly-run-")
    bad = run("schedules", "add", "sched", "x", "--cron", "99 * * * *")
    assert bad.exit_code == 1 and "cron '99 * * * *' is invalid" in bad.output
    bad = run("schedules", "add", "sched", "x", "--every", "5", "--data", "{nope")
    assert bad.exit_code == 1 and "--data is not JSON" in bad.output
    assert run("schedules", "remove", "sched", "nightly").exit_code == 0
    missing = run("schedules", "remove", "sched", "nightly")
    assert missing.exit_code == 1 and "no schedule 'nightly'" in missing.output
    assert "no schedules" in run("schedules", "list").output
    c = redis.Redis.from_url(jobq_settings.redis_url)
    assert c.hlen(QueueKeys(jobq_settings.prefix, "sched").schedules) == 0
    c.close()
