"""Per-minute history written by the worker's Lua scripts, read by jobq.history and `jobq stats --history`;
promote and the waiting window of the queue manager."""

import json
import time

import redis
from click.testing import CliRunner
from jobq import JobFailed, QueueSpec, hookimpl
from jobq.cli import Ctx, cli
from jobq.history import BUCKETS_MS, MAX_MINUTES, percentile, read_history, summarize
from jobq.keys import QueueKeys
from jobq.plugins import PluginHost


def work(job):
    if job.data.get("fail"):
        raise JobFailed("nope", code="ERR_NOPE", retryable=job.data.get("retry", False))
    time.sleep(job.data.get("sleep", 0))
    return {"n": job.data.get("n")}


SPEC = QueueSpec(name="histq", handler=work, concurrency=4, retries=1, backoff=0.01)


def test_worker_writes_counts_and_durations(jobq_harness, jobq_settings):
    h = jobq_harness
    h.start(SPEC)
    ids = [h.manager.add_job("histq", None, {"n": i, "sleep": 0.03}).id for i in range(5)]
    ids.append(h.manager.add_job("histq", None, {"fail": True, "retry": True}).id)
    for i in ids:
        h.wait("histq", i)
    rows = read_history(h.manager, ["histq"], 2)["histq"]
    assert [r.minute for r in rows] == [rows[1].minute - 1, rows[1].minute]
    s = summarize(rows)
    assert (s["completed"], s["failed"], s["retried"], s["stalled"]) == (5, 1, 1, 0)
    assert sum(sum(r.buckets) for r in rows) == 5
    assert 25 <= s["p50_ms"] <= 100  # 30 ms handlers land in the (25, 50] or (50, 100] bucket
    assert s["mean_ms"] >= 30
    client = redis.Redis.from_url(jobq_settings.redis_url)
    try:
        key = QueueKeys(jobq_settings.prefix, "histq").hist(rows[-1].minute if rows[-1].completed else rows[0].minute)
        ttl = client.pttl(key)
        assert 24 * 3600_000 < ttl <= 25 * 3600_000
    finally:
        client.close()


def test_reap_counts_stalls(jobq_settings, rclient):
    """A lease that ran out is counted as a stall in the minute's hash by reap.lua."""
    from jobq.queue import QueueManager
    from jobq.scripts import Scripts

    m = QueueManager(jobq_settings, [SPEC])
    m.add_job("histq", "s1", {})
    k = QueueKeys(jobq_settings.prefix, "histq")
    sc = Scripts(rclient)
    sc.fetch(keys=k.fetch_keys(), args=[k.job_prefix, 1, 1, "t:", 100, -1, -1, "w", 0])
    rclient.zadd(k.active, {"s1": 0})  # lease long gone
    assert sc.reap(keys=k.reap_keys(), args=[1000, 100, 1, k.job_prefix, 100]) == 1
    assert summarize(read_history(m, ["histq"], 1)["histq"])["stalled"] == 1
    m.close()


def test_percentile_and_bounds():
    assert percentile([0] * 15, 0.5) is None
    b = [0] * 15
    b[2], b[14] = 99, 1
    assert percentile(b, 0.5) == BUCKETS_MS[2]
    assert percentile(b, 0.999) == float("inf")
    assert MAX_MINUTES == 1440


class HistPlugin:
    @hookimpl
    def jobq_queues(self):
        return [SPEC]


def test_cli_stats_history_json(jobq_harness, jobq_settings, monkeypatch):
    monkeypatch.setenv("REDIS_URL", jobq_settings.redis_url)
    monkeypatch.setenv("JOBQ_PREFIX", jobq_settings.prefix)
    jobq_harness.run(SPEC, {"n": 1})
    host = PluginHost(group="jobq.none").load(extra=[HistPlugin()])
    res = CliRunner().invoke(cli, ["stats", "--history", "--minutes", "5", "--json"], obj=Ctx(host),
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["histq"]["summary"]["completed"] == 1
    assert len(data["histq"]["minutes"]) == 5
    res = CliRunner().invoke(cli, ["stats", "--history"], obj=Ctx(host), catch_exceptions=False)
    assert "histq: last 60 min: completed 1, failed 0" in res.output
    res = CliRunner().invoke(cli, ["stats", "--history", "-q", "histqq", "--json"], obj=Ctx(host),
                             catch_exceptions=False)  # a queue nobody declares is refused (issue 16.3)
    assert res.exit_code == 1 and "did you mean 'histq'?" in res.output
    res = CliRunner().invoke(cli, ["stats", "--history", "-q", "a b"], obj=Ctx(host))
    assert res.exit_code == 2 and "is not a queue name" in res.output


def test_promote_and_waiting_window(jobq_settings):
    from jobq.queue import QueueManager

    m = QueueManager(jobq_settings, [SPEC])
    m.add_job("histq", "late", {}, delay=3600)
    for i in range(3):
        m.add_job("histq", f"w{i}", {})
    m.add_job("histq", "urgent", {}, priority=5)
    assert m.list_job_ids("histq", "waiting", 0, 10) == ["urgent", "w2", "w1", "w0"]
    assert m.list_job_ids("histq", "waiting", 2, 2) == ["w1", "w0"]
    assert m.promote_job("histq", "late") is True
    assert m.get_job("histq", "late").state == "waiting"
    assert m.promote_job("histq", "late") is False
    assert m.list_job_ids("histq", "waiting", 0, 1) == ["urgent"]
    assert "late" in m.list_job_ids("histq", "waiting", 0, 10)
    m.add_job("histq", "after", {}, depends_on=[("histq", "late")])
    assert m.list_job_ids("histq", "blocked", 0, 10) == ["after"]
    m.close()


def test_failed_attempts_are_logged_on_the_job(jobq_harness, jobq_settings, rclient):
    """fail.lua keeps the last failed attempts (code, message, stack tail) in the job's faillog field."""
    spec = QueueSpec(name="attlog", handler=work, concurrency=1, retries=6, backoff=0.001)
    jobq_harness.start(spec)
    job = jobq_harness.manager.add_job("attlog", "a1", {"fail": True, "retry": True})
    assert jobq_harness.wait("attlog", job.id).state == "failed"
    log = json.loads(rclient.hget(QueueKeys(jobq_settings.prefix, "attlog").job("a1"), "faillog"))
    assert [a["a"] for a in log] == [3, 4, 5, 6, 7]  # 7 attempts, the last 5 kept
    assert {a["code"] for a in log} == {"ERR_NOPE"} and all("nope" in a["message"] for a in log)
    assert all(0 < len(a["stack"]) <= 1500 for a in log)
