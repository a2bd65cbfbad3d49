"""Every Lua script of the core runs on fakeredis + lupa, the jobq.testing fallback without a server."""

import hashlib
import uuid

import pytest
from jobq import JobFailed, QueueSpec, Schedule
from jobq.queue import QueueManager, make_client
from jobq.scripts import NAMES, source
from jobq.testing import Harness, make_test_settings, wait_until

pytest.importorskip("lupa")


def work(job):
    if job.data.get("fail"):
        raise JobFailed("nope", code="ERR_NOPE", retryable=False)
    job.progress("1/1")
    return {"n": job.data["n"] * 2}


SPEC = QueueSpec(name="fake", handler=work, concurrency=2, retries=0,
                 schedules=[Schedule(name="tick", every=1, data={"n": 5})])


@pytest.fixture
def fake(tmp_path):
    settings = make_test_settings(tmp_path, redis_url=f"fakeredis://{uuid.uuid4().hex}")
    harness = Harness(settings)
    yield settings, harness
    harness.close()


def test_every_script_runs_on_fakeredis(fake):
    settings, h = fake
    worker = h.start(SPEC)
    m = h.manager
    assert h.run(SPEC, {"n": 21}, job_id="ok").result == {"n": 42}
    failed = h.run(SPEC, {"fail": True}, job_id="bad")
    assert (failed.state, failed.failure.code) == ("failed", "ERR_NOPE")
    assert m.retry_job("fake", "bad") is True
    h.wait("fake", "bad")
    assert m.purge("fake", "failed") == 1 and m.get_job("fake", "bad") is None
    assert m.remove_job("fake", "ok") is True
    m.add_job("fake", "later", {"n": 1}, delay=0.2)
    assert h.wait("fake", "later").result == {"n": 2}
    m.add_job("fake", "parked", {"n": 1}, delay=3600)
    assert m.cancel_job("fake", "parked") == "delayed"
    m.add_job("fake", "promoted", {"n": 7}, delay=3600)
    m.promote_job("fake", "promoted")
    assert h.wait("fake", "promoted").result == {"n": 14}
    m.pause_group("fake", "tenant-a")  # groups: a paused group's jobs wait, resumed they run
    m.add_job("fake", "grouped", {"n": 9}, group="tenant-a")
    assert m.get_job_status("fake", "grouped") == "waiting"
    m.resume_group("fake", "tenant-a")
    assert h.wait("fake", "grouped").result == {"n": 18}
    m.add_job("fake", "first", {"n": 4}, delay=0.3)
    m.add_job("fake", "then", {"n": 8}, depends_on=[("fake", "first")])  # blocked until "first" completes
    assert h.wait("fake", "then").result == {"n": 16}
    ticked = wait_until(lambda: [j for j in m.list_jobs("fake", "completed", 0, 50) if j.id.startswith("tick-")],
                        10, message="a schedule tick to run")
    assert ticked[0].result == {"n": 10}

    # A stalled job: fetched with a 1 ms lease by nobody, then taken back by the reaper.
    from jobq.keys import QueueKeys
    from jobq.scripts import Scripts

    h.stop(worker)
    client = make_client(settings)
    sc, k = Scripts(client), QueueKeys(settings.prefix, "fake")
    m.add_job("fake", "stuck", {"n": 3})
    claimed = sc.fetch(keys=k.fetch_keys(), args=[k.job_prefix, 60_000, 1, "t:", 100, -1, -1, "w", 0])[2]
    token = claimed[1].decode()
    assert sc.heartbeat(keys=[k.active, k.job("stuck")], args=[60_000, "stuck", token]) == []
    assert sc.release(keys=[k.job("stuck"), k.active, k.wait, k.prio, k.marker, k.events, k.seq],
                      args=["stuck", token, 100]) == 1
    assert m.get_job_status("fake", "stuck") == "waiting"
    sc.fetch(keys=k.fetch_keys(), args=[k.job_prefix, 1, 1, "t:", 100, -1, -1, "w", 0])
    assert m.get_job_status("fake", "stuck") == "active"
    wait_until(lambda: sc.reap(keys=k.reap_keys(), args=[1, 100, 2, k.job_prefix, 100]) == 1, 5)
    assert m.get_job("fake", "stuck").stalls == 1
    h.start(SPEC)
    assert h.wait("fake", "stuck").result == {"n": 6}

    shas = [hashlib.sha1(source(n).encode()).hexdigest() for n in NAMES]
    loaded = dict(zip(NAMES, client.script_exists(*shas), strict=True))
    assert all(loaded.values()), f"never run: {[n for n, ok in loaded.items() if not ok]}"
    client.close()


def test_managers_share_one_fake_server_per_name(fake):
    settings, _h = fake
    with QueueManager(settings, [SPEC]) as a, QueueManager(settings, [SPEC]) as b:
        a.add_job("fake", "shared", {"n": 1})
        assert b.get_job_status("fake", "shared") == "waiting"
