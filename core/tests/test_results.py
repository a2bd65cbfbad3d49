"""wait_for: sync and async, on the real Redis with real workers."""

import asyncio
import threading
import time

import attrs
import pytest
from jobq import (
    AsyncQueueManager,
    ConfigError,
    InvalidOptions,
    JobNotCompleted,
    JobNotFound,
    QueueManager,
    QueueSpec,
    UnrecoverableError,
    WaitTimeout,
)
from jobq.testing import cli_invoker, make_test_settings

release = threading.Event()


def work(job):
    if job.data.get("fail"):
        raise UnrecoverableError("no good", code="ERR_NO_GOOD")
    if job.data.get("hold"):
        release.wait(10)
    time.sleep(job.data.get("sleep", 0))
    return {"n": job.data.get("n")}


SPEC = QueueSpec(name="waits", handler=work, concurrency=4, retries=0)


def test_wait_returns_the_completed_job_as_soon_as_it_completes(jobq_harness):
    """Event-driven, not polling: the job completes ~0.4 s in, while a blocked read lasts 2.5 s."""
    h = jobq_harness
    h.start(SPEC)
    job = h.manager.add_job("waits", "w1", {"n": 1, "sleep": 0.4})
    t0 = time.monotonic()
    done = h.manager.wait_for("waits", job.id, timeout=10)
    took = time.monotonic() - t0
    assert done.state == "completed" and done.result == {"n": 1}
    assert 0.3 < took < 1.5, took
    # already completed: returns at once
    t0 = time.monotonic()
    assert h.manager.wait_for("waits", "w1", timeout=5).result == {"n": 1}
    assert time.monotonic() - t0 < 0.5


def test_wait_raises_on_failure_timeout_and_unknown_job(jobq_harness):
    h = jobq_harness
    h.start(SPEC)
    h.manager.add_job("waits", "bad", {"fail": True})
    with pytest.raises(JobNotCompleted, match="job waits/bad failed: ERR_NO_GOOD: no good") as e:
        h.manager.wait_for("waits", "bad", timeout=10)
    assert e.value.state == "failed" and e.value.job.failure.code == "ERR_NO_GOOD"
    release.clear()
    h.manager.add_job("waits", "slow", {"hold": True})
    t0 = time.monotonic()
    with pytest.raises(WaitTimeout, match=r"job waits/slow still (waiting|active) after 0\.3s"):
        h.manager.wait_for("waits", "slow", timeout=0.3)
    assert time.monotonic() - t0 < 1.0
    release.set()
    assert h.manager.wait_for("waits", "slow", timeout=10).state == "completed"
    with pytest.raises(JobNotFound):
        h.manager.wait_for("waits", "nope", timeout=1)
    with pytest.raises(Exception, match="timeout must be a number"):
        h.manager.wait_for("waits", "slow", timeout=-1)


def test_wait_raises_when_the_job_is_cancelled(jobq_harness):
    """Cancelled while waited on (a waiting job, then an active one): the waiter hears it at once."""
    h = jobq_harness
    release.clear()
    h.start(attrs.evolve(SPEC, concurrency=1))
    h.manager.add_jobs("waits", [("busy", {"hold": True}), ("queued", {})])
    h.wait("waits", "busy", states=("active",))
    for job_id in ("queued", "busy"):
        timer = threading.Timer(0.3, h.manager.cancel_job, ("waits", job_id, "not needed"))
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(JobNotCompleted, match=f"job waits/{job_id} cancelled") as e:
            h.manager.wait_for("waits", job_id, timeout=10)
        assert time.monotonic() - t0 < 1.5 and e.value.state == "cancelled"
        timer.join()
    release.set()


async def test_async_wait_for_many_jobs_at_once(jobq_harness):
    h = jobq_harness
    h.start(SPEC)
    async with AsyncQueueManager(h.settings, [SPEC]) as m:
        ids = [f"a{i}" for i in range(6)]
        await m.add_jobs("waits", [(i, {"n": n, "sleep": 0.2}) for n, i in enumerate(ids)])
        waits = [asyncio.create_task(m.wait_for("waits", i, timeout=10)) for i in ids]
        await m.add_job("waits", "a-bad", {"fail": True})
        results = await asyncio.gather(*waits)
        assert [j.result["n"] for j in results] == list(range(6))
        with pytest.raises(JobNotCompleted):
            await m.wait_for("waits", "a-bad", timeout=10)


def test_wait_refuses_when_events_are_off(tmp_path):
    m = QueueManager(make_test_settings(tmp_path, events_maxlen=0), [SPEC])
    with pytest.raises(ConfigError, match="JOBQ_EVENTS_MAXLEN=0"):
        m.wait_for("waits", "x", timeout=1)
    m.shutdown()


@pytest.mark.parametrize("queue, job_id", [("waits\n", "x"), ("waits", "x\n"), ("waits", "x/../y")])
def test_wait_refuses_names_that_are_not_a_full_match(jobq_settings, queue, job_id):
    with QueueManager(jobq_settings, [SPEC]) as m, pytest.raises(InvalidOptions):
        m.wait_for(queue, job_id, timeout=1)


def test_cli_job_wait(jobq_settings, jobq_harness, monkeypatch):
    run = cli_invoker(jobq_settings, monkeypatch, SPEC)

    jobq_harness.start(SPEC)
    jobq_harness.manager.add_jobs("waits", [("c-ok", {"n": 3, "sleep": 0.2}), ("c-bad", {"fail": True})])
    r = run("job", "waits", "c-ok", "--wait", "--timeout", "10")
    assert r.exit_code == 0 and "completed" in r.output and '"n": 3' in r.output
    r = run("job", "waits", "c-bad", "--wait", "--json")
    assert r.exit_code == 1 and '"ERR_NO_GOOD"' in r.output
    release.clear()
    jobq_harness.manager.add_job("waits", "c-slow", {"hold": True})
    r = run("job", "waits", "c-slow", "--wait", "--timeout", "0.2")
    release.set()
    assert r.exit_code == 1 and "still" in r.output and "after 0.2s" in r.output
