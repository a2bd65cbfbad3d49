"""The worker against the real Redis: handlers, retries, timeouts, fencing, shutdown, hooks."""

import asyncio
import os
import threading

import attrs
import redis
from jobq import JobFailed, QueueSpec, Retry, UnrecoverableError, hookimpl
from jobq.keys import QueueKeys
from jobq.plugins import PluginHost
from jobq.scripts import Scripts
from jobq.storage import Storage
from jobq.testing import wait_until


async def double(job):
    job.progress("1/2")
    await asyncio.sleep(0)
    job.progress("2/2")
    return {"x": job.data["n"] * 2}


def sync_double(job):
    assert job.settings is not None and job.settings.prefix.startswith("jobqt-")
    job.progress(50)
    return {"x": job.data["n"] * 2, "thread": threading.current_thread().name}


def test_async_and_sync_handlers_complete(jobq_harness):
    a = jobq_harness.run(QueueSpec(name="a", handler=double), {"n": 21})
    assert (a.state, a.result, a.progress, a.attempts) == ("completed", {"x": 42}, "2/2", 1)
    s = jobq_harness.run(QueueSpec(name="s", handler=sync_double), {"n": 2})
    assert s.result["x"] == 4 and s.result["thread"].startswith("jobq-s") and s.progress == 50
    assert s.finished_at >= s.started_at >= s.created_at


class Boom(Exception):
    code = "ERR_BOOM"


def always_fails(job):
    raise Boom(f"boom on attempt {job.attempt}")


def test_retries_with_exponential_backoff_then_failed(jobq_harness):
    spec = QueueSpec(name="flaky", handler=always_fails, retries=3, backoff=0.1)
    job = jobq_harness.run(spec, {}, job_id="f1")
    assert (job.state, job.attempts, job.failed_attempts) == ("failed", 4, 4)
    assert job.failure.code == "ERR_BOOM" and "attempt 4" in job.failure.message
    assert "Traceback" in job.failure.stack and "always_fails" in job.failure.stack
    events = jobq_harness.manager.read_events("flaky")
    retry_delays = [int(e["delay"]) for e in events if e["event"] == "retrying"]
    assert retry_delays == [100, 200, 400]
    assert [e["event"] for e in events][-1] == "failed"


def test_full_jitter_spreads_retries_below_the_exponential_delay(jobq_harness):
    spec = QueueSpec(name="jit", handler=always_fails, retries=3, backoff=0.2, backoff_jitter=1.0, concurrency=8)
    jobq_harness.start(spec)
    ids = [f"j{i}" for i in range(8)]
    jobq_harness.manager.add_jobs("jit", [(i, {}) for i in ids])
    for i in ids:
        assert jobq_harness.wait("jit", i).failed_attempts == 4
    delays: dict[str, list[int]] = {}
    for e in jobq_harness.manager.read_events("jit", count=1000):
        if e["event"] == "retrying":
            delays.setdefault(e["jobId"], []).append(int(e["delay"]))
    assert sorted(delays) == ids
    for d in delays.values():  # retry n waits uniformly in [0, 200 ms x 2^(n-1)]
        assert len(d) == 3 and all(0 <= x <= cap for x, cap in zip(d, (200, 400, 800), strict=True))
    firsts = [d[0] for d in delays.values()]
    assert len(set(firsts)) > 1, f"jobs that failed together retry together: {firsts}"


def unrecoverable(job):
    raise UnrecoverableError("bad input", code="ERR_BAD_INPUT")


def test_unrecoverable_error_fails_at_once(jobq_harness):
    job = jobq_harness.run(QueueSpec(name="u", handler=unrecoverable, retries=5), {})
    assert (job.state, job.attempts, job.failure.code) == ("failed", 1, "ERR_BAD_INPUT")


def plain_error(job):
    raise KeyError("missing")


def test_reason_code_is_class_name_without_code(jobq_harness):
    job = jobq_harness.run(QueueSpec(name="k", handler=plain_error, retries=0), {})
    assert job.failure.code == "KeyError"


async def slow(job):
    await asyncio.sleep(30)


def test_timeout_fails_with_err_timeout_and_retries(jobq_harness):
    job = jobq_harness.run(QueueSpec(name="slow", handler=slow, retries=1, backoff=0, timeout=0.2), {})
    assert (job.state, job.attempts, job.failure.code) == ("failed", 2, "ERR_TIMEOUT")


def test_per_job_options_override_the_queue(jobq_harness):
    spec = QueueSpec(name="o", handler=always_fails, retries=5, backoff=0)
    job = jobq_harness.run(spec, {}, retries=0)
    assert job.attempts == 1 and job.state == "failed"


def defers_twice(job):
    if job.attempt <= 2:
        raise Retry(0.05, "rate limited")
    return {"attempt": job.attempt}


def test_retry_defers_without_spending_an_attempt(jobq_harness):
    job = jobq_harness.run(QueueSpec(name="d", handler=defers_twice, retries=0), {})
    assert (job.state, job.result, job.failed_attempts) == ("completed", {"attempt": 3}, 0)


def test_priorities_and_fifo(jobq_harness):
    order = []

    def record(job):
        order.append(job.data["n"])

    spec = QueueSpec(name="prio", handler=record, concurrency=1)
    m = jobq_harness.manager
    m.specs["prio"] = spec
    m.pause_queue("prio")
    jobq_harness.start(spec)
    m.add_jobs("prio", [(None, {"n": 1}), (None, {"n": 2})])
    m.add_job("prio", None, {"n": 3}, priority=10)
    m.add_job("prio", None, {"n": 4}, priority=-5)
    m.add_job("prio", None, {"n": 5}, priority=10)
    m.resume_queue("prio")
    wait_until(lambda: len(order) == 5, 10)
    assert order == [3, 5, 1, 2, 4]


def test_delayed_job_waits(jobq_harness):
    spec = QueueSpec(name="later", handler=double)
    jobq_harness.start(spec)
    jobq_harness.manager.add_job("later", "d1", {"n": 1}, delay=0.5)
    job = jobq_harness.wait("later", "d1", 10)
    assert job.state == "completed" and job.started_at - job.created_at >= 0.49


def test_fencing_a_stale_attempt_cannot_write(jobq_settings):
    """A worker whose lease expired is fenced: its complete, progress and heartbeat are refused."""
    from jobq.queue import QueueManager

    m = QueueManager(jobq_settings, [QueueSpec(name="f", handler=double)])
    m.add_job("f", "j1", {"n": 1})
    client = redis.Redis.from_url(jobq_settings.redis_url)
    sc = Scripts(client)
    k = QueueKeys(jobq_settings.prefix, "f")
    fkeys = k.fetch_keys()

    def fetch(token_base, acks=(), lease=20):
        keys, args = list(fkeys), [k.job_prefix, lease, 1, token_base, 100, -1, -1, "w", len(acks)]
        for job_id, tok in acks:
            keys.append(k.job(job_id))
            args += [job_id, tok, '{"done":1}', 3]
        return sc.fetch(keys=keys, args=args)

    _now, _lost, claimed, *_ = fetch("old:")
    stale = claimed[1].decode()
    wait_until(lambda: client.zscore(k.active, "j1") < int(client.time()[0]) * 1000, 5)
    reap = k.reap_keys()
    assert sc.reap(keys=reap, args=[1, 100, 2, k.job_prefix, 100]) == 1
    _now, _lost, claimed, *_ = fetch("new:", lease=30000)
    fresh = claimed[1].decode()
    assert fresh != stale and int(claimed[2]) == 2
    assert sc.heartbeat(keys=[k.active, k.job("j1")], args=[30000, "j1", stale]) == [b"j1"]
    assert sc.progress(keys=[k.job("j1"), k.events], args=["j1", stale, '"x"', 100]) == 0
    _now, lost, _c, *_ = fetch("z:", acks=[("j1", stale)])
    assert lost == [b"j1"] and m.get_job_status("f", "j1") == "active"
    _now, lost, _c, *_ = fetch("z:", acks=[("j1", fresh)])
    assert lost == [] and m.get_job("f", "j1").result == {"done": 1}
    assert m.get_job("f", "j1").stalls == 1
    client.close()
    m.shutdown()


def test_stall_limit_fails_with_err_stalled(jobq_settings):
    from jobq.queue import QueueManager

    m = QueueManager(jobq_settings, [QueueSpec(name="st", handler=double)])
    m.add_job("st", "j1", {})
    client = redis.Redis.from_url(jobq_settings.redis_url)
    sc = Scripts(client)
    k = QueueKeys(jobq_settings.prefix, "st")
    fkeys = k.fetch_keys()
    reap = k.reap_keys()
    for _ in range(2):
        sc.fetch(keys=fkeys, args=[k.job_prefix, 1, 1, "t:", 100, -1, -1, "w", 0])
        wait_until(lambda: client.zscore(k.active, "j1") < int(client.time()[0]) * 1000, 5)
        wait_until(lambda: sc.reap(keys=reap, args=[1, 100, 1, k.job_prefix, 100]) == 1, 5)
    job = m.get_job("st", "j1")
    assert (job.state, job.failure.code, job.stalls, job.attempts) == ("failed", "ERR_STALLED", 2, 2)
    client.close()
    m.shutdown()


def test_process_mode_runs_in_a_child_and_kills_on_timeout(jobq_harness, tmp_path, monkeypatch):
    import sys

    sys.path.insert(0, os.path.dirname(__file__))
    monkeypatch.setenv("JOBQ_TEST_LEDGER", str(tmp_path / "ledger"))
    from jobq_test_handlers import cpu_burn

    spec = QueueSpec(name="cpu", handler=cpu_burn, execution="process", concurrency=1, retries=0, timeout=1.0)
    ok = jobq_harness.run(spec, {"seconds": 0.1}, timeout=60)
    assert ok.state == "completed" and ok.result["pid"] != os.getpid()
    bad = jobq_harness.run(spec, {"seconds": 30}, timeout=60)
    assert (bad.state, bad.failure.code) == ("failed", "ERR_TIMEOUT")
    import json

    pids = {json.loads(line)["pid"] for line in (tmp_path / "ledger").read_text().splitlines()}
    killed = pids - {ok.result["pid"]}
    def gone(pid):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().split()[2] == "Z"
        except FileNotFoundError:
            return True

    for pid in killed:
        wait_until(lambda pid=pid: gone(pid), 10, message="child killed")


def test_hostile_payload_in_redis_fails_without_retry(jobq_harness, rclient):
    @attrs.frozen(kw_only=True)
    class P:
        n: int

    spec = QueueSpec(name="h", handler=lambda job: {"n": job.data.n}, payload=P, retries=3)
    m = jobq_harness.manager
    m.specs["h"] = spec
    m.add_job("h", "ok", {"n": 1})
    key = f"{jobq_harness.settings.prefix}:{{h}}:job:"
    m.add_job("h", "pickle", {"n": 1})
    rclient.hset(key + "pickle", "data", b"\x80\x04\x95cos\nsystem\n")
    m.add_job("h", "extra", {"n": 1})
    rclient.hset(key + "extra", "data", '{"n": 1, "evil": "x"}')
    jobq_harness.start(spec)
    for job_id in ("pickle", "extra"):
        job = jobq_harness.wait("h", job_id)
        assert (job.state, job.attempts, job.failure.code) == ("failed", 1, "ERR_INVALID_PAYLOAD")
    assert jobq_harness.wait("h", "ok").state == "completed"


def leaky(job):
    raise JobFailed(f"401 from server: token {job.data['credentials']['token']} refused", code="ERR_AUTH",
                    retryable=False)


def test_secrets_redacted_from_failures_and_erased(jobq_harness, rclient):
    spec = QueueSpec(name="sec", handler=leaky, secret_fields=("credentials",))
    job = jobq_harness.run(spec, {"credentials": {"token": "canary-7f3a9c"}, "x": 1})
    assert job.state == "failed" and job.failure.code == "ERR_AUTH"
    dump = b"".join(
        repr(rclient.dump(k)).encode() for k in rclient.scan_iter(match=f"{jobq_harness.settings.prefix}:*"))
    assert b"canary-7f3a9c" not in dump
    assert "[redacted]" in job.failure.message


def test_claim_checked_payload_reaches_handler_and_is_collected(jobq_settings, tmp_path):
    from jobq.testing import Harness

    settings = attrs.evolve(jobq_settings, claim_check_bytes=200, retention_completed=0)
    seen = []
    h = Harness(settings)
    try:
        spec = QueueSpec(name="big", handler=lambda job: seen.append(len(job.data["blob"])))
        h.manager.specs["big"] = spec
        job = h.manager.add_job("big", "b1", {"blob": "q" * 10_000})
        storage = Storage.from_settings(settings)
        assert job.payload_ref and storage.exists(job.payload_ref)
        h.start(spec, presence_interval=0.2)
        # retention 0: the completed job is trimmed at once and its blob collected by the worker
        wait_until(lambda: not storage.exists(job.payload_ref), 10, message="blob collected")
        assert seen == [10_000] and h.manager.get_job("big", "b1") is None
    finally:
        h.close()


class Recorder:
    def __init__(self):
        self.calls = []

    @hookimpl
    def jobq_worker_started(self, worker_id, queues):
        self.calls.append(("worker_started", tuple(queues)))

    @hookimpl
    def jobq_job_started(self, job_id, attempt):
        self.calls.append(("started", job_id, attempt))

    @hookimpl
    def jobq_job_completed(self, job_id, result):
        self.calls.append(("completed", job_id, result))

    @hookimpl
    def jobq_job_failed(self, job_id, code, will_retry):
        self.calls.append(("failed", job_id, code, will_retry))

    @hookimpl
    def jobq_worker_stopping(self, worker_id):
        self.calls.append(("worker_stopping",))

    @hookimpl
    def jobq_worker_stopped(self, queues):
        self.calls.append(("worker_stopped", tuple(queues)))


def fail_first(job):
    if job.attempt == 1:
        raise JobFailed("once", code="ERR_ONCE")
    return "ok"


def test_lifecycle_hooks_in_order(jobq_harness):
    rec = Recorder()
    host = PluginHost(group="jobq.none").load(extra=[rec])
    spec = QueueSpec(name="hk", handler=fail_first, retries=1, backoff=0)
    jobq_harness.manager.specs["hk"] = spec
    w = jobq_harness.start(spec, hooks=host)
    jobq_harness.manager.add_job("hk", "j", {})
    jobq_harness.wait("hk", "j")
    jobq_harness.stop(w)
    assert rec.calls == [("worker_started", ("hk",)), ("started", "j", 1), ("failed", "j", "ERR_ONCE", True),
                         ("started", "j", 2), ("completed", "j", "ok"), ("worker_stopping",),
                         ("worker_stopped", ("hk",))]


def test_graceful_stop_finishes_short_jobs_and_hands_back_long_ones(jobq_settings):
    from jobq.testing import Harness

    gate = threading.Event()

    async def short_or_long(job):
        if job.data["long"]:
            await asyncio.sleep(60)
        await asyncio.to_thread(gate.wait, 5)
        return "done"

    h = Harness(attrs.evolve(jobq_settings, shutdown_grace=1.0))
    try:
        spec = QueueSpec(name="g", handler=short_or_long, concurrency=2)
        w = h.start(spec)
        h.manager.add_job("g", "short", {"long": False})
        h.manager.add_job("g", "long", {"long": True})
        wait_until(lambda: h.manager.get_queue_metrics("g")["active"] == 2, 5)
        threading.Timer(0.2, gate.set).start()
        h.stop(w)
        assert h.manager.get_job("g", "short").state == "completed"
        long = h.manager.get_job("g", "long")
        assert (long.state, long.attempts, long.stalls) == ("waiting", 0, 0)
    finally:
        h.close()


def test_idle_worker_is_woken_by_enqueue(jobq_harness):
    """A worker blocked in Redis (30 s block timeout) starts a new job at once: the marker wakes it."""
    spec = QueueSpec(name="idle", handler=double)
    w = jobq_harness.start(spec, block_timeout=30.0)
    wait_until(lambda: w.runners[0].want_marker.is_set(), 5, message="worker blocking on the marker")
    job = jobq_harness.manager.add_job("idle", None, {"n": 1})
    assert jobq_harness.wait("idle", job.id, 10).state == "completed"


def test_timed_out_thread_keeps_its_slot_until_it_returns(jobq_harness):
    """A blocking handler past its timeout cannot be killed: the worker does not start another job
    on that thread's slot until it returns, so the next job's clock never runs while it waits."""
    release = threading.Event()
    started = []

    def stubborn(job):
        started.append(job.data["n"])
        if job.data["n"] == 0:
            release.wait(10)
        return job.data["n"]

    spec = QueueSpec(name="zomb", handler=stubborn, concurrency=1, retries=0, timeout=0.2)
    w = jobq_harness.start(spec)
    jobq_harness.manager.add_job("zomb", "z0", {"n": 0})
    assert jobq_harness.wait("zomb", "z0").failure.code == "ERR_TIMEOUT"
    jobq_harness.manager.add_job("zomb", "z1", {"n": 1})
    wait_until(lambda: w.runners[0].zombies == 1, 5)
    assert jobq_harness.manager.get_job_status("zomb", "z1") == "waiting" and started == [0]
    release.set()
    assert jobq_harness.wait("zomb", "z1").state == "completed"
    assert w.runners[0].zombies == 0


def test_idle_worker_gets_jobs_handed_over_in_one_hop(jobq_harness, rclient):
    spec = QueueSpec(name="hop", handler=double, concurrency=2)
    w = jobq_harness.start(spec)
    k = QueueKeys(jobq_harness.settings.prefix, "hop")
    wait_until(lambda: rclient.zcard(k.idle) == 1, 5, message="worker offers a slot")
    jobq_harness.manager.add_job("hop", "h1", {"n": 4})
    job = jobq_harness.wait("hop", "h1")
    assert job.result == {"x": 8} and job.attempts == 1
    events = [e for e in jobq_harness.manager.read_events("hop") if e["jobId"] == "h1"]
    assert [e["event"] for e in events] == ["added", "active", "progress", "progress", "completed"]
    assert rclient.hget(k.job("h1"), "worker").decode() == w.id
    jobq_harness.manager.pause_queue("hop")  # a paused queue hands nothing over
    wait_until(lambda: rclient.zcard(k.idle) == 1, 5)
    jobq_harness.manager.add_job("hop", "h2", {"n": 1})
    assert jobq_harness.manager.get_job_status("hop", "h2") == "paused"
    jobq_harness.manager.resume_queue("hop")
    assert jobq_harness.wait("hop", "h2").state == "completed"


def test_stopped_worker_withdraws_its_idle_offer(jobq_harness, rclient):
    spec = QueueSpec(name="bye", handler=double)
    w = jobq_harness.start(spec)
    k = QueueKeys(jobq_harness.settings.prefix, "bye")
    wait_until(lambda: rclient.zcard(k.idle) == 1, 5)
    jobq_harness.stop(w)
    assert rclient.zcard(k.idle) == 0
    jobq_harness.manager.add_job("bye", "b1", {"n": 1})
    assert jobq_harness.manager.get_job_status("bye", "b1") == "waiting"


def test_job_handed_to_a_dead_worker_is_taken_back(jobq_harness, rclient):
    """A worker that died while offering a slot holds the job only until its lease runs out."""
    spec = QueueSpec(name="ghost", handler=double)
    k = QueueKeys(jobq_harness.settings.prefix, "ghost")
    rclient.zadd(k.idle, {"300|ghost-worker": int(rclient.time()[0]) * 1000 + 60_000})
    jobq_harness.manager.specs["ghost"] = spec
    jobq_harness.manager.add_job("ghost", "g1", {"n": 5})
    assert jobq_harness.manager.get_job_status("ghost", "g1") == "active"
    assert rclient.llen(k.inbox("ghost-worker")) == 1
    jobq_harness.start(spec)
    job = jobq_harness.wait("ghost", "g1")
    assert (job.state, job.result, job.stalls, job.attempts) == ("completed", {"x": 10}, 1, 2)



def fail_when_asked(job):
    if job.data.get("fail"):
        raise UnrecoverableError("asked to fail", code="ERR_ASKED")
    return len(job.data.get("pad", ""))


def test_retention_by_count_trims_oldest_and_their_payloads(jobq_settings, tmp_path):
    """At most N completed and M failed jobs are kept per queue, oldest first out, trimmed in the
    fetch round trips; a trimmed job's claim-checked payload is collected like an aged-out one's."""
    from jobq.testing import Harness

    settings = attrs.evolve(jobq_settings, retention_completed_count=3, retention_failed_count=2,
                            claim_check_bytes=100)
    h = Harness(settings)
    try:
        spec = QueueSpec(name="cnt", handler=fail_when_asked, retries=0)
        h.start(spec, presence_interval=0.2)
        refs = []
        for i in range(8):
            refs.append(h.manager.add_job("cnt", f"ok{i}", {"pad": "x" * 200}).payload_ref)
            h.wait("cnt", f"ok{i}")
        for i in range(5):
            h.manager.add_job("cnt", f"bad{i}", {"fail": True})
            h.wait("cnt", f"bad{i}")
        h.manager.add_job("cnt", "last", {})
        h.wait("cnt", "last")
        client = redis.Redis.from_url(settings.redis_url)
        k = QueueKeys(settings.prefix, "cnt")
        wait_until(lambda: client.zcard(k.completed) == 3 and client.zcard(k.failed) == 2, 10)
        assert {m.decode() for m in client.zrange(k.completed, 0, -1)} == {"ok6", "ok7", "last"}
        assert {m.decode() for m in client.zrange(k.failed, 0, -1)} == {"bad3", "bad4"}
        assert not client.exists(k.job("ok0")) and not client.exists(k.job("bad0"))
        storage = Storage.from_settings(settings)
        assert all(refs) and storage.exists(refs[7])
        wait_until(lambda: not any(storage.exists(r) for r in refs[:6]), 10, message="trimmed blobs collected")
        client.close()
    finally:
        h.close()
