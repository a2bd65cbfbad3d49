"""Workers as real OS processes: SIGKILL, a poison job, SIGTERM, SIGSTOP (zombie), Redis restart.

Every handler start is written to a ledger file outside Redis, so starts and duplicates are counted
independently of what jobq itself reports.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import attrs
import pytest
import redis
from jobq.keys import QueueKeys
from jobq.queue import QueueManager
from jobq.testing import delete_prefix, make_test_settings, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from jobq_test_handlers import SPECS  # noqa: E402


@pytest.fixture
def crash_settings(tmp_path):
    s = make_test_settings(tmp_path, lease_seconds=2.0, stall_interval=0.5, shutdown_grace=10.0)
    yield s
    c = redis.Redis.from_url(s.redis_url)
    delete_prefix(c, s.prefix)
    c.close()


class Fleet:
    def __init__(self, settings, ledger):
        self.settings = settings
        self.ledger = ledger
        self.procs = []

    def spawn(self, queues):
        env = {**os.environ, "JOBQ_TEST_LEDGER": str(self.ledger), "PYTHONPATH": HERE}
        p = subprocess.Popen([sys.executable, os.path.join(HERE, "jobq_test_handlers.py"),
                              json.dumps(attrs.asdict(self.settings)), queues], env=env)
        self.procs.append(p)
        m = QueueManager(self.settings, strict=False)
        wait_until(lambda: any(str(p.pid) in w["id"] for w in m.list_workers()), 20, message="worker up")
        m.shutdown()
        return p

    def entries(self):
        if not self.ledger.exists():
            return []
        return [json.loads(x) for x in self.ledger.read_text().splitlines() if x.strip()]

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)


@pytest.fixture
def fleet(crash_settings, tmp_path):
    f = Fleet(crash_settings, tmp_path / "ledger.jsonl")
    yield f
    f.close()


def test_sigkill_loses_nothing_and_bounds_duplicates(fleet, crash_settings):
    m = QueueManager(crash_settings, [SPECS["sleepy"]])
    ids = [j.id for j in m.add_jobs("sleepy", [(f"j{i}", {"sleep": 0.02 + (i % 4) * 0.02}) for i in range(150)])]
    victim = fleet.spawn("sleepy")
    fleet.spawn("sleepy")
    wait_until(lambda: m.get_queue_metrics("sleepy")["completed"] >= 40, 30)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    fleet.spawn("sleepy")
    wait_until(lambda: m.get_queue_metrics("sleepy")["completed"] == 150, 60, message="all completed")
    starts = [e for e in fleet.entries() if e["event"] == "start"]
    per_job = {}
    for e in starts:
        per_job.setdefault(e["id"], []).append(e)
    assert set(per_job) == set(ids)
    dups = {k: v for k, v in per_job.items() if len(v) > 1}
    assert all(len(v) == 2 for v in dups.values())
    assert len(dups) <= SPECS["sleepy"].concurrency  # at most what the killed worker had in flight
    assert all(v[0]["pid"] == victim.pid for v in dups.values())
    assert all(m.get_job("sleepy", k).stalls == 1 for k in dups)
    assert m.get_queue_metrics("sleepy")["active"] == 0
    m.shutdown()


def test_poison_job_that_kills_its_worker_ends_failed(fleet, crash_settings):
    spec = SPECS["poison1"]
    m = QueueManager(crash_settings, [SPECS["poison1"]])
    m.add_job("poison1", "bad", {"poison": True})
    m.add_jobs("poison1", [(f"ok{i}", {}) for i in range(20)])
    restarts = 0
    proc = fleet.spawn("poison1")
    deadline = time.monotonic() + 60
    while m.get_job_status("poison1", "bad") != "failed":
        assert time.monotonic() < deadline, "poison job never failed"
        if proc.poll() is not None:
            restarts += 1
            proc = fleet.spawn("poison1")
        time.sleep(0.05)
    wait_until(lambda: m.get_queue_metrics("poison1")["completed"] == 20, 30)
    bad = m.get_job("poison1", "bad")
    assert bad.failure.code == "ERR_STALLED" and bad.stalls == spec.max_stalls + 1
    poison_starts = [e for e in fleet.entries() if e["id"] == "bad" and e["event"] == "start"]
    assert len(poison_starts) == 1 + spec.max_stalls
    assert restarts <= len(poison_starts)
    m.shutdown()


def test_sigterm_drains_active_jobs_without_stalls(fleet, crash_settings):
    m = QueueManager(crash_settings, [SPECS["sleepy"]])
    m.add_jobs("sleepy", [(f"t{i}", {"sleep": 1.0}) for i in range(4)])
    proc = fleet.spawn("sleepy")
    wait_until(lambda: m.get_queue_metrics("sleepy")["active"] == 4, 10)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(crash_settings.shutdown_grace + 5) == 0
    assert m.get_queue_metrics("sleepy")["completed"] == 4
    assert "stalled" not in m.get_counters("sleepy")
    assert all(m.get_job("sleepy", f"t{i}").attempts == 1 for i in range(4))
    m.shutdown()


def test_zombie_worker_is_fenced(fleet, crash_settings):
    """SIGSTOP a worker past its lease: another takes the job; the zombie's result is refused."""
    m = QueueManager(crash_settings, [SPECS["sleepy1"]])
    zombie = fleet.spawn("sleepy1")
    m.add_job("sleepy1", "z", {"sleep": 1.0})
    wait_until(lambda: any(e["event"] == "start" for e in fleet.entries()), 10)
    zombie.send_signal(signal.SIGSTOP)
    try:
        fleet.spawn("sleepy1")
        wait_until(lambda: m.get_job_status("sleepy1", "z") == "completed", 20)
    finally:
        zombie.send_signal(signal.SIGCONT)
    wait_until(lambda: sum(e["event"] == "end" for e in fleet.entries()) == 2, 10, message="zombie finishes")
    events = [e["event"] for e in m.read_events("sleepy1", count=1000) if e["jobId"] == "z"]
    assert events.count("completed") == 1 and events.count("stalled") == 1
    tokens = {e["token"] for e in fleet.entries()}
    assert len(tokens) == 2
    m.shutdown()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_worker_survives_a_redis_restart(tmp_path):
    port = _free_port()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path), "--save", "",
           "--appendonly", "yes", "--appendfsync", "always", "--maxmemory-policy", "noeviction"]

    def start():
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        wait_until(lambda: _pings(port), 10, message="redis up")
        return p

    server = start()
    settings = make_test_settings(tmp_path, redis_url=f"redis://127.0.0.1:{port}/0", lease_seconds=2.0,
                                  stall_interval=0.5, socket_timeout=2.0)
    f = Fleet(settings, tmp_path / "ledger.jsonl")
    try:
        m = QueueManager(settings, [SPECS["sleepy"]])
        worker = f.spawn("sleepy")
        m.add_jobs("sleepy", [(f"a{i}", {"sleep": 0.01}) for i in range(20)])
        wait_until(lambda: m.get_queue_metrics("sleepy")["completed"] == 20, 20)
        server.kill()
        server.wait(10)
        server = start()
        m2 = QueueManager(settings, [SPECS["sleepy"]])
        m2.add_jobs("sleepy", [(f"b{i}", {"sleep": 0.01}) for i in range(20)])
        wait_until(lambda: m2.get_queue_metrics("sleepy")["completed"] == 40, 30, message="drain after restart")
        assert worker.poll() is None
        assert m2.get_queue_metrics("sleepy")["active"] == 0
        m2.shutdown()
    finally:
        f.close()
        server.kill()
        server.wait(10)


def _pings(port):
    try:
        return redis.Redis(port=port, socket_timeout=0.5).ping()
    except redis.RedisError:
        return False


def test_keys_of_a_queue_use_one_tag():
    k = QueueKeys("jobq", "q")
    assert all("{q}" in key for key in k.fetch_keys() + k.reap_keys())
