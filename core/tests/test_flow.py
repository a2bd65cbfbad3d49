"""Flow control on the real Redis: groups served in turn, group concurrency and pause, the queue's
rolling-window rate limit, and RateLimited holding a shared limit key. The proofs that matter run
workers as OS processes (a ledger file outside Redis records every handler start)."""

import json
import os
import signal
import subprocess
import sys
import threading

import attrs
import pytest
import redis
from click.testing import CliRunner
from jobq import InvalidOptions, QueueSpec, RateLimited
from jobq.cli import cli
from jobq.keys import QueueKeys
from jobq.queue import QueueManager
from jobq.testing import delete_prefix, make_test_settings, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from jobq_test_handlers import SPECS  # noqa: E402


# -- in-process: claim order, pause, removal, stats ------------------------------------------------
def _recording(name, **spec):
    starts, lock = [], threading.Lock()

    def handler(job):
        with lock:
            starts.append(job.id)
        return None

    return QueueSpec(name=name, handler=handler, **spec), starts


def test_groups_take_turns_and_priorities_order_jobs_within_a_group(jobq_harness):
    spec, starts = _recording("turns")
    m = jobq_harness.manager
    m.specs[spec.name] = spec
    m.add_jobs("turns", [(f"flood{i}", {}, {"group": "flood"}) for i in range(60)])
    m.add_jobs("turns", [(f"late{i}", {}, {"group": "trickle"}) for i in range(3)])
    m.add_job("turns", "urgent", {}, group="trickle", priority=5)
    assert m.get_queue_metrics("turns")["waiting"] == 64
    jobq_harness.start(spec)
    wait_until(lambda: len(starts) == 64, 10, message="all jobs ran")
    trickle = [i for i, j in enumerate(starts) if not j.startswith("flood")]
    assert trickle[-1] <= 8, starts[:10]  # served in turn, not after 60 flood jobs
    assert [starts[i] for i in trickle] == ["urgent", "late0", "late1", "late2"]
    floods = [j for j in starts if j.startswith("flood")]
    assert floods == [f"flood{i}" for i in range(60)]  # FIFO within the group
    assert m.get_job("turns", "late0").group == "trickle"
    assert m.get_queue_metrics("turns")["waiting"] == 0


def test_paused_group_waits_while_others_run_and_resumes(jobq_harness):
    spec, starts = _recording("pg")
    m = jobq_harness.manager
    m.specs[spec.name] = spec
    m.pause_group("pg", "a")
    m.add_jobs("pg", [("a1", {}, {"group": "a"}), ("b1", {}, {"group": "b"}), ("u1", {})])
    jobq_harness.start(spec)
    wait_until(lambda: {"b1", "u1"} <= set(starts), 10, message="b1 and u1 ran")
    assert m.get_job_status("pg", "a1") == "waiting"
    assert m.get_group_stats("pg") == [{"group": "a", "waiting": 1, "active": 0, "paused": True,
                                        "rate_limited": False}]
    result = CliRunner().invoke(cli, ["resume", "pg", "--group", "a"], obj=_cli_obj(m))
    assert result.exit_code == 0, result.output
    jobq_harness.wait("pg", "a1", 10)
    assert starts.count("a1") == 1


def test_removing_a_waiting_grouped_job_and_bad_options(jobq_settings):
    m = QueueManager(jobq_settings, strict=False)
    try:
        m.add_jobs("rm", [("x", {}, {"group": "g1"}), ("y", {}, {"group": "g1"})])
        assert m.remove_job("rm", "x")
        assert m.get_queue_metrics("rm")["waiting"] == 1
        assert m.get_group_stats("rm")[0] == {"group": "g1", "waiting": 1, "active": 0, "paused": False,
                                              "rate_limited": False}
        with pytest.raises(InvalidOptions, match="group"):
            m.add_job("rm", None, {}, group="a b{c}")
        with pytest.raises(InvalidOptions, match="limit_key"):
            m.add_job("rm", None, {}, limit_key="")
        with pytest.raises(InvalidOptions, match="rate_limit"):
            QueueSpec(name="q", handler=print, rate_limit=(0, 1))
    finally:
        m.shutdown()


def test_group_concurrency_counts_every_way_out_of_active(jobq_harness):
    """Jobs that fail, are deferred or complete all give their group's slot back."""
    seen = []

    def handler(job):
        seen.append(job.id)
        if job.data.get("fail") and job.attempt == 1:
            raise ValueError("boom")
        if job.data.get("defer") and job.attempt == 1:
            raise RateLimited(0.05)
        return None

    spec = QueueSpec(name="gways", handler=handler, concurrency=4, group_concurrency=1, backoff=0.01)
    m = jobq_harness.manager
    jobq_harness.start(spec)
    ids = [m.add_job("gways", None, d, group="g").id for d in ({"fail": 1}, {"defer": 1}, {}, {})]
    for i in ids:
        assert jobq_harness.wait("gways", i, 10).state == "completed"
    rc = redis.Redis.from_url(m.settings.redis_url)
    try:
        assert rc.hgetall(QueueKeys(m.settings.prefix, "gways").gactive) == {}
    finally:
        rc.close()
    assert len(seen) == 6


def _cli_obj(manager):
    from jobq.cli import Ctx

    obj = Ctx()
    obj._manager = manager
    return obj


# -- worker processes --------------------------------------------------------------------------
@pytest.fixture
def flow_settings(tmp_path):
    s = make_test_settings(tmp_path, lease_seconds=1.0, stall_interval=0.2, shutdown_grace=5.0)
    yield s
    c = redis.Redis.from_url(s.redis_url)
    delete_prefix(c, s.prefix)
    c.close()


class Fleet:
    def __init__(self, settings, ledger):
        self.settings, self.ledger, self.procs = settings, ledger, []

    def spawn(self, queues, n=1):
        path = os.pathsep.join(filter(None, [HERE, os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "JOBQ_TEST_LEDGER": str(self.ledger), "PYTHONPATH": path}
        new = [subprocess.Popen([sys.executable, os.path.join(HERE, "jobq_test_handlers.py"),
                                 json.dumps(attrs.asdict(self.settings)), queues], env=env) for _ in range(n)]
        self.procs += new
        m = QueueManager(self.settings, strict=False)
        try:
            wait_until(lambda: all(any(str(p.pid) in w["id"] for w in m.list_workers()) for p in new), 20,
                       message="workers up")
        finally:
            m.shutdown()
        return new

    def entries(self, event="start"):
        if not self.ledger.exists():
            return []
        rows = [json.loads(x) for x in self.ledger.read_text().splitlines() if x.strip()]
        return [r for r in rows if r["event"] == event]

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)


@pytest.fixture
def fleet(flow_settings, tmp_path):
    f = Fleet(flow_settings, tmp_path / "ledger.jsonl")
    yield f
    f.close()


def _started_ms(m, queue, ids):
    rows = [m.get_job(queue, i) for i in ids]
    return sorted(round(j.started_at * 1000) for j in rows)


def test_a_trickle_group_is_served_during_a_flood(fleet, flow_settings):
    m = QueueManager(flow_settings, [SPECS["fair"]])
    m.add_jobs("fair", [(f"f{i}", {"sleep": 0.02}, {"group": "flood"}) for i in range(600)])
    fleet.spawn("fair", 2)
    wait_until(lambda: len(fleet.entries()) >= 20, 20, message="the flood is draining")
    m.add_jobs("fair", [(f"t{i}", {"sleep": 0.01}, {"group": "trickle"}) for i in range(5)])
    for i in range(5):
        wait_until(lambda i=i: m.get_job_status("fair", f"t{i}") == "completed", 10, message="trickle done")
    assert m.get_queue_metrics("fair")["waiting"] > 100, "the trickle waited for the flood"
    waits = [m.get_job("fair", f"t{i}") for i in range(5)]
    assert max(j.started_at - j.created_at for j in waits) < 1.0
    m.shutdown()


def test_rate_limit_holds_in_every_rolling_window_across_processes(fleet, flow_settings):
    m = QueueManager(flow_settings, [SPECS["rated"]])
    fleet.spawn("rated", 2)
    ids = [j.id for j in m.add_jobs("rated", [(f"r{i}", {"sleep": 0}) for i in range(30)])]
    wait_until(lambda: m.get_queue_metrics("rated")["completed"] == 30, 15, message="30 rated jobs")
    starts = _started_ms(m, "rated", ids)
    window_ms, limit = 400, 5
    for a, b in zip(starts, starts[limit:], strict=False):
        assert b - a >= window_ms, f"{limit + 1} starts within {b - a} ms"
    span = starts[-1] - starts[0]
    assert (30 // limit - 1) * window_ms <= span <= (30 // limit - 1) * window_ms + 500  # no idle polling gaps
    assert len({e["pid"] for e in fleet.entries()}) == 2
    m.shutdown()


def test_group_slots_come_back_when_a_killed_workers_leases_expire(fleet, flow_settings):
    m = QueueManager(flow_settings, [SPECS["gconc"]])
    rc = redis.Redis.from_url(flow_settings.redis_url)
    k = QueueKeys(flow_settings.prefix, "gconc")
    ids = [j.id for j in m.add_jobs("gconc", [(f"g{i}", {"sleep": 1.5 if i < 2 else 0.1}, {"group": "g"})
                                              for i in range(8)])]
    (victim,) = fleet.spawn("gconc")
    wait_until(lambda: len(fleet.entries()) == 2, 10, message="two jobs started")
    assert rc.hget(k.gactive, "g") == b"2"  # the group is full: its other 6 jobs wait
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    deadline = max(score for _, score in rc.zrange(k.active, 0, -1, withscores=True)) / 1000
    fleet.spawn("gconc")
    wait_until(lambda: all(m.get_job_status("gconc", i) == "completed" for i in ids[2:]), 20,
               message="the rest of the group")
    survivors = [e for e in fleet.entries() if e["pid"] != victim.pid]
    assert min(e["t"] for e in survivors) >= deadline - 0.05  # no slot came back before the leases ended
    spans = sorted((e["t"], 1) for e in survivors) + sorted((e["t"], -1) for e in fleet.entries("end"))
    live = peak = 0
    for _, d in sorted(spans, key=lambda x: (x[0], x[1])):
        live += d
        peak = max(peak, live)
    assert peak <= 2
    rc.close()
    m.shutdown()


def test_a_rate_limited_key_holds_the_jobs_of_every_worker(fleet, flow_settings):
    m = QueueManager(flow_settings, [SPECS["vendor"]])
    rc = redis.Redis.from_url(flow_settings.redis_url)
    k = QueueKeys(flow_settings.prefix, "vendor")
    fleet.spawn("vendor", 2)
    m.add_job("vendor", "trip", {"trip": 1.0}, limit_key="vendor:acct")
    until = wait_until(lambda: rc.zscore(k.limits, "vendor:acct"), 10, message="the hold") / 1000
    held = [j.id for j in m.add_jobs("vendor", [(f"h{i}", {}, {"limit_key": "vendor:acct"}) for i in range(12)])]
    free = [j.id for j in m.add_jobs("vendor", [(f"free{i}", {}) for i in range(3)])]
    for i in free:
        wait_until(lambda i=i: m.get_job_status("vendor", i) == "completed", 5, message="free jobs run")
    wait_until(lambda: all(m.get_job_status("vendor", i) == "completed" for i in ["trip", *held]), 15,
               message="held jobs released")
    starts = _started_ms(m, "vendor", ["trip", *held])
    assert starts[0] >= until * 1000
    assert sum(1 for s in starts if s < until * 1000 + 250) <= 4  # released a few at a time
    assert starts[-1] >= until * 1000 + 750
    assert len({e["pid"] for e in fleet.entries() if e["id"].startswith("h")}) == 2
    assert m.get_job("vendor", "trip").failed_attempts == 0
    rc.close()
    m.shutdown()


def test_cli_pauses_a_group_and_stats_show_groups_and_rate_limits(jobq_settings):
    m = QueueManager(jobq_settings, strict=False)
    try:
        m.add_jobs("cliq", [(f"a{i}", {}, {"group": "big"}) for i in range(5)] + [("b0", {}, {"group": "small"})])
        m.redis.hset(m.keys("cliq").meta, "rate", "10/60000")  # what a rate-limited worker announces
        m.redis.sadd(jobq_settings.prefix + ":queues", "cliq")
        obj = _cli_obj(m)
        obj._host = _no_plugins()
        runner = CliRunner()
        out = runner.invoke(cli, ["pause", "cliq", "--group", "big"], obj=obj)
        assert out.exit_code == 0 and "paused group big of cliq" in out.output
        out = runner.invoke(cli, ["stats", "--groups"], obj=obj)
        assert out.exit_code == 0, out.output
        assert "cliq: rate 10/60s (0 started in the window)" in out.output
        lines = out.output.splitlines()
        big = next(i for i, x in enumerate(lines) if x.strip().startswith("big"))
        assert "5 waiting" in lines[big] and "paused" in lines[big]
        assert lines[big + 1].strip().startswith("small")
        data = json.loads(runner.invoke(cli, ["stats", "--json", "--groups=1"], obj=obj).output)
        assert [g["group"] for g in data["groups"]["cliq"]] == ["big"]
        assert data["flow_control"]["cliq"]["rate_limit"] == [10, 60.0]
        with pytest.raises(InvalidOptions, match="group"):
            m.pause_group("cliq", "no spaces")
    finally:
        m.shutdown()


def _no_plugins():
    from jobq.plugins import PluginHost

    return PluginHost(group="jobq.none").load()


def test_a_free_job_behind_a_flood_of_held_jobs_still_starts_soon(jobq_harness):
    """Parking held jobs is bounded per claim call (no long script), and the claim comes back at once."""
    spec, starts = _recording("heldflood", concurrency=2)
    m = jobq_harness.manager
    m.specs[spec.name] = spec
    rc = m.redis
    k = m.keys("heldflood")
    rc.zadd(k.limits, {"acct": int(rc.time()[0]) * 1000 + 60_000})  # as a RateLimited(60, key="acct") leaves it
    for i in range(0, 2500, 500):
        m.add_jobs("heldflood", [(f"h{j}", {}, {"limit_key": "acct"}) for j in range(i, i + 500)])
    m.add_job("heldflood", "free", {})
    jobq_harness.start(spec)
    wait_until(lambda: "free" in starts, 5, message="the free job")
    assert starts == ["free"]
    assert m.get_queue_metrics("heldflood")["delayed"] == 2500
    slots = sorted(s for _, s in rc.zrange(k.delayed, 0, -1, withscores=True))
    assert slots[3] == slots[0] and slots[4] == slots[0] + 250  # released 4 at a time, 250 ms apart


def test_cancel_gives_a_group_its_slot_back_and_dependents_keep_their_group(jobq_harness):
    import asyncio

    started = []

    async def handler(job):
        started.append(job.id)
        if job.data.get("hang"):
            await asyncio.sleep(30)
        return None

    spec = QueueSpec(name="gcancel", handler=handler, concurrency=4, group_concurrency=1)
    m = jobq_harness.manager
    jobq_harness.start(spec)
    m.add_job("gcancel", "hang", {"hang": True}, group="g")
    wait_until(lambda: started == ["hang"], 5, message="the hanging job")
    m.add_job("gcancel", "queued", {}, group="g")
    assert m.cancel_job("gcancel", "queued") == "waiting"  # out of the group's list
    assert m.get_queue_metrics("gcancel")["waiting"] == 0
    m.add_job("gcancel", "after", {}, group="g", depends_on=[("gcancel", "hang")])
    assert m.cancel_job("gcancel", "hang") == "active"  # the slot comes back...
    # ...and the dependent, failed by the cancelled dependency, never runs; a new job of g does
    m.add_job("gcancel", "next", {}, group="g")
    jobq_harness.wait("gcancel", "next", 10)
    assert "queued" not in started and m.get_job("gcancel", "next").group == "g"
    assert m.redis.hgetall(m.keys("gcancel").gactive) == {}


def test_a_grouped_dependent_runs_in_its_group_once_its_dependency_completes(jobq_harness):
    spec, starts = _recording("gdeps", concurrency=2, group_concurrency=1)
    m = jobq_harness.manager
    m.specs[spec.name] = spec
    jobq_harness.start(spec)
    m.add_job("gdeps", "first", {}, group="p1")
    m.add_job("gdeps", "second", {}, group="p1", depends_on=[("gdeps", "first")])
    job = jobq_harness.wait("gdeps", "second", 10)
    assert job.state == "completed" and job.group == "p1" and starts == ["first", "second"]


def test_async_manager_pauses_groups_and_reads_flow_control(jobq_settings):
    import asyncio

    from jobq import AsyncQueueManager

    async def main():
        async with AsyncQueueManager(jobq_settings, strict=False) as m:
            await m.add_jobs("aq", [("x", {}, {"group": "g1"}), ("y", {}, {"group": "g2"})])
            await m.pause_group("aq", "g1")
            flow = await m.get_flow_control("aq")
            rows = await m.get_group_stats("aq")
            await m.resume_group("aq", "g1")
            return flow, rows, await m.get_flow_control("aq")

    paused, rows, resumed = asyncio.run(main())
    assert (paused["groups_ready"], paused["groups_paused"], resumed["groups_ready"]) == (1, 1, 2)
    assert [(r["group"], r["paused"]) for r in rows] == [("g1", True), ("g2", False)]
