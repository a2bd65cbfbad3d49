"""Cancellation: waiting, delayed and blocked jobs never start; an active job is stopped in each
execution mode; a cancelled job is never retried."""

import asyncio
import os
import sys
import threading
import time

import pytest
from jobq import InvalidOptions, JobNotFound, QueueSpec
from jobq.testing import wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def test_waiting_delayed_and_blocked_jobs_never_start(jobq_harness):
    ran = []
    spec = QueueSpec(name="cw", handler=lambda job: ran.append(job.id), retries=5)
    m = jobq_harness.manager
    m.specs["cw"] = spec
    m.add_job("cw", "w1", {})
    m.add_job("cw", "d1", {}, delay=0.01)
    m.add_job("cw", "dep", {}, delay=30)
    m.add_job("cw", "b1", {}, depends_on=[("cw", "dep")])
    assert m.cancel_job("cw", "w1", reason="not needed") == "waiting"
    assert m.cancel_job("cw", "d1") == "delayed"
    assert m.cancel_job("cw", "b1") == "blocked"
    jobq_harness.start(spec)
    jobq_harness.manager.add_job("cw", "after", {})
    jobq_harness.wait("cw", "after")
    assert "w1" not in ran and "d1" not in ran and "b1" not in ran and ran == ["after"]
    job = m.get_job("cw", "w1")
    assert (job.state, job.failure.code, job.failure.message) == ("cancelled", "ERR_CANCELLED", "not needed")
    events = [e for e in m.read_events("cw") if e["event"] == "cancelled"]
    assert {e["jobId"] for e in events} == {"w1", "d1", "b1"}
    assert m.get_counters("cw")["cancelled"] == 3
    # a finished job is left as it is; an unknown one is an error; never retried automatically
    assert m.cancel_job("cw", "after") == "completed" and m.get_job("cw", "after").state == "completed"
    assert m.cancel_job("cw", "w1") == "cancelled"
    with pytest.raises(JobNotFound):
        m.cancel_job("cw", "nope")
    with pytest.raises(InvalidOptions):
        m.cancel_job("cw", "w1", reason="x" * 501)
    assert m.retry_job("cw", "w1") is False  # only failed jobs are retried


def test_active_async_handler_is_cancelled(jobq_harness):
    started, cancelled = threading.Event(), threading.Event()

    async def wait_long(job):
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    spec = QueueSpec(name="ca", handler=wait_long, retries=3)
    jobq_harness.start(spec)
    jobq_harness.manager.add_job("ca", "a1", {})
    assert started.wait(10)
    assert jobq_harness.manager.cancel_job("ca", "a1", "user abort") == "active"
    assert cancelled.wait(5), "the handler's task was not cancelled"
    job = jobq_harness.manager.get_job("ca", "a1")
    assert (job.state, job.attempts) == ("cancelled", 1)
    # the slot is free again: the next job runs (and completes) on the same worker
    started.clear()
    jobq_harness.manager.add_job("ca", "a2", {})
    assert started.wait(10)
    jobq_harness.manager.cancel_job("ca", "a2")
    wait_until(lambda: jobq_harness.manager.get_job("ca", "a2").state == "cancelled", 5)


def test_active_thread_handler_sees_cancelled(jobq_harness):
    seen = []

    def poll(job):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if job.cancelled:
                seen.append(job.id)
                return {"stopped": True}
            time.sleep(0.02)
        return {"stopped": False}

    spec = QueueSpec(name="ct", handler=poll, execution="thread")
    jobq_harness.start(spec)
    m = jobq_harness.manager
    m.add_job("ct", "t1", {})
    wait_until(lambda: m.get_job("ct", "t1").state == "active", 10)
    m.cancel_job("ct", "t1")
    wait_until(lambda: seen == ["t1"], 5, message="thread handler saw job.cancelled")
    job = m.get_job("ct", "t1")
    assert job.state == "cancelled" and job.result is None  # the late result is discarded


def test_active_process_handler_is_killed(jobq_harness, tmp_path, monkeypatch):
    from jobq_test_handlers import SPECS

    monkeypatch.setenv("JOBQ_TEST_LEDGER", str(tmp_path / "ledger.jsonl"))
    spec = SPECS["forever"]
    jobq_harness.start(spec)
    m = jobq_harness.manager
    m.add_job("forever", "p1", {})
    ledger = tmp_path / "ledger.jsonl"
    wait_until(lambda: ledger.exists() and '"p1"' in ledger.read_text(), 20, message="child started")
    import json

    child = json.loads(ledger.read_text().splitlines()[0])["pid"]
    m.cancel_job("forever", "p1")

    def gone():
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return True
        return False

    wait_until(gone, 10, message="the handler's process was killed")
    assert m.get_job("forever", "p1").state == "cancelled"


def test_cli_cancel(jobq_harness, monkeypatch):
    from jobq.testing import cli_invoker

    m = jobq_harness.manager
    spec = QueueSpec(name="cc", handler=lambda job: None)
    m.specs["cc"] = spec
    m.add_job("cc", "x1", {}, delay=60)
    invoke = cli_invoker(jobq_harness.settings, monkeypatch, spec)

    r = invoke("cancel", "cc", "x1", "--reason", "typo")
    assert r.exit_code == 0, r.output
    assert "cancelled cc/x1 (was delayed)" in r.output
    assert m.get_job("cc", "x1").failure.message == "typo"
    m.add_jobs("cc", [(f"g{i}", {}, {"group": "acme", "delay": 60}) for i in range(3)])
    r = invoke("cancel", "cc", "--group", "acme")
    assert r.exit_code == 0 and "cancelled 3 job(s) of group acme in cc" in r.output, r.output
    assert invoke("cancel", "cc").exit_code == 2  # a job id or --group
    r = invoke("cancel", "cc", "missing")
    assert r.exit_code != 0 and "no job" in r.output


def test_cancel_a_whole_group(jobq_harness):
    started = threading.Event()

    async def hold(job):
        started.set()
        await asyncio.sleep(60)

    spec = QueueSpec(name="cg", handler=hold, concurrency=1)
    m = jobq_harness.manager
    m.specs["cg"] = spec
    m.add_job("cg", "a-run", {}, group="acme")
    jobq_harness.start(spec)
    assert started.wait(10)
    m.add_jobs("cg", [(f"a{i}", {}, {"group": "acme"}) for i in range(5)]
               + [(f"a-late{i}", {}, {"group": "acme", "delay": 60}) for i in range(2)]
               + [(f"b{i}", {}, {"group": "other"}) for i in range(3)])
    m.add_job("cg", "a-blocked", {}, group="acme", depends_on=[("cg", "b0")])
    assert m.cancel_group("cg", "acme", reason="tenant deleted") == 9
    for i in ["a-run", "a-blocked"] + [f"a{i}" for i in range(5)] + [f"a-late{i}" for i in range(2)]:
        assert m.get_job("cg", i).state == "cancelled", i
    assert [m.get_job("cg", f"b{i}").state for i in range(3)] in (["waiting"] * 3, ["active"] + ["waiting"] * 2)
    assert m.cancel_group("cg", "acme") == 0
    with pytest.raises(InvalidOptions):
        m.cancel_group("cg", "bad group!")
