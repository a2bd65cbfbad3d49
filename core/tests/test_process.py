"""The child side of ``execution="process"``: progress writes, on a real Redis and on one that never answers."""

import os
import socket
import sys
import time

import pytest
from jobq import QueueSpec, process
from jobq.keys import QueueKeys
from jobq.testing import make_test_settings

sys.path.insert(0, os.path.dirname(__file__))
from jobq_test_handlers import stepper  # importable by the spawned children too


def test_progress_of_a_process_handler_lands_in_order_before_its_completion(jobq_harness):
    spec = QueueSpec(name="steps", handler=stepper, execution="process", concurrency=1, retries=0)
    job = jobq_harness.run(spec, {"steps": 20}, job_id="s1", timeout=60)
    assert (job.state, job.result, job.progress) == ("completed", {"steps": 20}, "20/20")
    events = [e for e in jobq_harness.manager.read_events("steps") if e["jobId"] == "s1"]
    assert [e["event"] for e in events] == ["added", "active", *["progress"] * 20, "completed"]
    assert [e["progress"] for e in events if e["event"] == "progress"] == [f'"{i}/20"' for i in range(1, 21)]


def _state(settings, job_id, data):
    import json

    return {"id": job_id, "queue": "steps", "name": "", "attempt": 1, "created_at": time.time(),
            "token": "tok", "raw": json.dumps(data).encode(), "ref": None, "secrets": None, "payload": None,
            "lazy": False, "settings": settings}


@pytest.fixture
def writer(monkeypatch):
    """A progress writer of this test's own: one left waiting on a dead server delays nobody else."""
    fresh = process._ProgressWriter()
    monkeypatch.setattr(process, "_progress_writer", fresh)
    return fresh


def test_a_failing_handler_s_progress_is_written_before_the_outcome_returns(jobq_settings, rclient, writer):
    if jobq_settings.redis_url.startswith("fakeredis"):
        pytest.skip("a process handler needs a real Redis")
    k = QueueKeys(jobq_settings.prefix, "steps")
    rclient.hset(k.job("p1"), "token", "tok")  # the attempt holding the lease
    kind, value = process.child_run(stepper, _state(jobq_settings, "p1", {"steps": 3, "fail": "boom"}))
    assert (kind, value[0], value[2]) == ("err", "error", "boom")
    assert rclient.hget(k.job("p1"), "progress") == b'"3/3"'  # no wait: flushed before child_run returned


def test_progress_never_blocks_the_handler_even_when_redis_does_not_answer(tmp_path, writer):
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections, never replies
    try:
        port = silent.getsockname()[1]
        settings = make_test_settings(tmp_path, redis_url=f"redis://127.0.0.1:{port}/0", socket_timeout=1.0)

        def handler(job):
            t0 = time.monotonic()
            for i in range(3):
                job.progress(i)
            return {"progress_took": time.monotonic() - t0}

        t0 = time.monotonic()
        kind, result = process.child_run(handler, _state(settings, "p2", {}))
        took = time.monotonic() - t0
        # Blocking writes would have cost one socket timeout each (3 s); the handler waited for none,
        # and the outcome waited at most one socket timeout for the writes still pending.
        assert kind == "ok" and result["progress_took"] < 0.5
        assert took < 2.5
    finally:
        silent.close()


@pytest.mark.parametrize(("max_tasks", "pids"), [(2, 3), (None, 1)])
def test_a_handler_process_is_replaced_after_its_max_tasks(jobq_harness, max_tasks, pids):
    from jobq_test_handlers import whoami

    spec = QueueSpec(name=f"recycled-{max_tasks}", handler=whoami, execution="process", concurrency=1,
                     process_max_tasks=max_tasks)
    seen = [jobq_harness.run(spec, None, timeout=60).result for _ in range(5)]
    assert len(set(seen)) == pids, seen
