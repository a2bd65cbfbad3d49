"""Jobs that wait for others across queues: results handed on, failure policies, all-or-nothing
flows, and recovery from a crash at every step (each step is idempotent and re-run)."""

import json
import os
import signal
import sys

import pytest
import redis
from jobq import FlowJob, InvalidOptions, QueueSpec, UnrecoverableError
from jobq.keys import QueueKeys
from jobq.queue import _exec_sync
from jobq.scripts import Scripts
from jobq.testing import wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def step(job):
    if job.data.get("fail"):
        raise UnrecoverableError("asked to fail", code="ERR_ASKED")
    before = [x for r in job.dependency_results.values() if r for x in r["path"]]
    return {"path": [*before, job.id]}


A = QueueSpec(name="qa", handler=step)
B = QueueSpec(name="qb", handler=step)
C = QueueSpec(name="qc", handler=step)


@pytest.fixture
def three(jobq_harness):
    for s in (A, B, C):
        jobq_harness.manager.specs[s.name] = s
        jobq_harness.manager._known.add(s.name)
    return jobq_harness


def test_chain_across_queues_passes_results(three):
    m = three.manager
    m.add_job("qa", "a", {})
    b = m.add_job("qb", "b", {}, depends_on=[("qa", "a")])
    c = m.add_job("qc", "c", {}, depends_on=[("qb", "b"), ("qa", "a")])
    assert (b.state, c.state, c.depends_on) == ("blocked", "blocked", (("qb", "b"), ("qa", "a")))
    assert m.get_job("qc", "c").state == "blocked"
    three.start(A, B, C)
    done = three.wait("qc", "c")
    assert done.state == "completed"
    assert done.result["path"] in (["b", "a", "a", "c"], ["a", "b", "a", "c"])  # b's path then a's, either order
    assert m.get_job("qb", "b").result == {"path": ["a", "b"]}
    assert m.get_job("qc", "c").depends_on == (("qb", "b"), ("qa", "a"))


def test_dependency_that_already_completed_releases_at_once(three):
    three.start(A, B)
    three.run(A, {}, job_id="a")
    b = three.manager.add_job("qb", "b", {}, depends_on=[("qa", "a")])
    assert b.state == "blocked"
    assert three.wait("qb", "b").result == {"path": ["a", "b"]}


def test_failure_fails_dependents_transitively_unless_run(three):
    m = three.manager
    m.add_job("qa", "a", {"fail": True})
    m.add_job("qb", "b", {}, depends_on=[("qa", "a")])
    m.add_job("qc", "c", {}, depends_on=[("qb", "b")])
    m.add_job("qc", "runs", {}, depends_on=[("qa", "a")], on_dependency_failure="run")
    three.start(A, B, C)
    for q, i in (("qb", "b"), ("qc", "c")):
        job = three.wait(q, i)
        assert (job.state, job.failure.code) == ("failed", "ERR_DEPENDENCY_FAILED"), (q, i)
        assert job.attempts == 0
    runs = three.wait("qc", "runs")
    assert runs.state == "completed" and runs.result == {"path": ["runs"]}


def test_cancelled_dependency_fails_the_dependent(three):
    m = three.manager
    m.add_job("qa", "a", {}, delay=60)
    m.add_job("qb", "b", {}, depends_on=[("qa", "a")])
    m.cancel_job("qa", "a")
    job = m.get_job("qb", "b")  # the manager resolved it as part of the cancel
    assert (job.state, job.failure.code) == ("failed", "ERR_DEPENDENCY_FAILED")
    assert "cancelled" in job.failure.message


def test_bad_dependencies_are_refused_and_nothing_written(three):
    m = three.manager
    with pytest.raises(InvalidOptions, match="do not exist: qa/ghost"):
        m.add_job("qb", "b", {}, depends_on=[("qa", "ghost")])
    with pytest.raises(InvalidOptions, match="pair"):
        m.add_job("qb", "b", {}, depends_on=["qa/a"])
    with pytest.raises(InvalidOptions, match="on_dependency_failure"):
        m.add_job("qb", "b", {}, depends_on=[("qa", "a")], on_dependency_failure="maybe")
    m.add_job("qa", "a", {})
    with pytest.raises(InvalidOptions, match="delay"):
        m.add_job("qb", "b", {}, depends_on=[("qa", "a")], delay=5)
    assert m.get_job("qb", "b") is None


def test_crash_after_block_before_register_is_repaired_by_the_sweep(three, monkeypatch):
    """The producer died right after creating the blocked job: no dependency knows of it. The
    sweep of a worker serving its queue registers it and it runs."""
    from jobq import dependencies

    m = three.manager
    m.add_job("qa", "a", {})
    monkeypatch.setattr(dependencies, "register", lambda *a, **k: iter(()))  # the crash: step 2 never runs
    m.add_job("qb", "b", {}, depends_on=[("qa", "a")])
    monkeypatch.undo()
    monkeypatch.setattr(dependencies, "FIRST_CHECK_MS", 0)
    client = redis.Redis.from_url(three.settings.redis_url)
    assert client.hget(QueueKeys(three.settings.prefix, "qa").job("a"), "dn") is None
    client.zadd(QueueKeys(three.settings.prefix, "qb").blocked, {"b": 0})  # its first check is due
    three.start(A, B)
    assert three.wait("qb", "b").result == {"path": ["a", "b"]}
    client.close()


def test_crash_between_outbox_and_resolve_and_duplicate_resolves(three):
    """The dependency completed (its outbox entry written in the same script) but the worker died
    before resolving: any later worker of that queue drains the outbox. Resolving twice is a no-op."""
    m = three.manager
    s = three.settings
    client = redis.Redis.from_url(s.redis_url)
    sc = Scripts(client)
    ka, kb = QueueKeys(s.prefix, "qa"), QueueKeys(s.prefix, "qb")
    m.add_job("qa", "a", {})
    m.add_job("qb", "b", {}, depends_on=[("qa", "a")])
    # complete "a" with the raw scripts, as a worker that then dies would
    _now, _lost, claimed, *_ = sc.fetch(keys=ka.fetch_keys(), args=[ka.job_prefix, 30000, 1, "t:", 100, -1, -1,
                                                                     "w", 0])
    token = claimed[1].decode()
    *_, queued = sc.fetch(keys=[*ka.fetch_keys(), ka.job("a")],
                          args=[ka.job_prefix, 30000, 0, "t:", 100, -1, -1, "w", 1, "a", token, '{"path":["a"]}', 5])
    assert queued == 1 and client.llen(ka.resolve) == 1
    entry = json.loads(client.lindex(ka.resolve, 0))
    assert (entry["t"], entry["d"], entry["s"]) == ("qb|b", "qa|a", "completed")
    assert m.get_job("qb", "b").state == "blocked"
    # a duplicate resolution counts once
    args = ["qa|a", "completed", '{"path":["a"]}', 100, "qb|b"]
    keys = [kb.job("b"), kb.wait, kb.prio, kb.blocked, kb.events, kb.marker, kb.seq, kb.failed, kb.stats, kb.resolve]
    assert sc.resolve(keys=keys, args=args)[0] == b"ready"
    assert sc.resolve(keys=keys, args=args)[0] == b"noop"
    client.hset(kb.job("b"), "state", "blocked")  # even if it were still blocked, the dependency counts once
    assert sc.resolve(keys=keys, args=args)[0] == b"dup"
    client.hset(kb.job("b"), "state", "waiting")
    three.start(A, B)
    wait_until(lambda: client.llen(ka.resolve) == 0, 10, message="outbox drained by the new worker's sweep")
    assert three.wait("qb", "b").result == {"path": ["a", "b"]}
    client.close()


def test_flow_all_or_nothing(three, monkeypatch):
    from jobq import dependencies

    m = three.manager
    jobs = m.add_flow([
        FlowJob("qa", "shot", {}),
        FlowJob("qb", "replay", {}),
        FlowJob("qc", "issue", {}, depends_on=[("qa", "shot"), ("qb", "replay")], on_dependency_failure="run"),
    ])
    assert [j.state for j in jobs] == ["waiting", "waiting", "blocked"]
    three.start(A, B, C)
    assert sorted(three.wait("qc", "issue").result["path"]) == ["issue", "replay", "shot"]
    with pytest.raises(InvalidOptions, match="comes after it"):
        m.add_flow([FlowJob("qc", "x", {}, depends_on=[("qa", "y")]), FlowJob("qa", "y", {})])

    # the producer dies right before the commit point: no job of the flow ever runs; the sweep
    # cancels them once the grace is over
    monkeypatch.setattr(dependencies, "FLOW_GRACE_MS", 0)
    monkeypatch.setattr(dependencies, "FIRST_CHECK_MS", 0)
    gen = dependencies.add_flow(m, [FlowJob("qa", "s2", {}), FlowJob("qc", "i2", {}, depends_on=[("qa", "s2")])])
    value = None
    while True:
        call = gen.send(value)
        if isinstance(call, tuple) and call[0] == "SET":
            gen.close()  # killed here
            break
        value = _exec_sync(m.redis, m.scripts, call)
    assert m.get_job("qa", "s2").state == "blocked"
    root = three.wait("qa", "s2", timeout=15)
    assert (root.state, root.attempts) == ("cancelled", 0) and "never committed" in root.failure.message
    dependent = three.wait("qc", "i2", timeout=15)  # cancelled by the sweep, or failed by its root first
    assert dependent.attempts == 0 and dependent.failure.code in ("ERR_CANCELLED", "ERR_DEPENDENCY_FAILED")


def test_chain_survives_sigkill_between_steps(tmp_path):
    """A->B->C across three queues, each served by its own worker process; the worker of B's queue
    is SIGKILLed while B runs. B is taken back when its lease expires, and C still runs."""
    from jobq.queue import QueueManager
    from jobq.testing import delete_prefix, make_test_settings

    sys.path.insert(0, HERE)
    from test_crash import Fleet

    s = make_test_settings(tmp_path, lease_seconds=2.0, stall_interval=0.5, shutdown_grace=5.0)
    fleet = Fleet(s, tmp_path / "ledger.jsonl")
    from jobq_test_handlers import SPECS

    m = QueueManager(s, [SPECS["chain1"], SPECS["chain2"], SPECS["chain3"]])
    try:
        fleet.spawn("chain1")
        victim = fleet.spawn("chain2")
        fleet.spawn("chain3")
        m.add_job("chain1", "a", {})
        m.add_job("chain2", "b", {"sleep": 30}, depends_on=[("chain1", "a")])
        m.add_job("chain3", "c", {}, depends_on=[("chain2", "b")])
        wait_until(lambda: any(e["id"] == "b" for e in fleet.entries()), 20, message="b started")
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        fleet.spawn("chain2")  # takes b back when its lease expires and runs it again (no sleep then)
        job = wait_until(lambda: (j := m.get_job("chain3", "c")) and j.state == "completed" and j, 60,
                         message="c completed")
        assert job.result == {"path": ["a", "b", "c"]}
        assert m.get_job("chain2", "b").stalls == 1
    finally:
        fleet.close()
        m.shutdown()
        c = redis.Redis.from_url(s.redis_url)
        delete_prefix(c, s.prefix)
        c.close()
