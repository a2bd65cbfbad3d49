"""A real 3-node Redis Cluster on loopback: every script stays in one slot (no CROSSSLOT), queues
spread over the nodes, and the whole job life cycle works through ``redis+cluster://``."""

import random
import shutil
import socket
import subprocess
import time

import pytest
import redis
from jobq import JobFailed, QueueSpec, Schedule
from jobq.testing import Harness, make_test_settings, wait_until

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None or shutil.which("redis-cli") is None,
                                reason="redis-server/redis-cli not installed")


def _free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _free_ports(n):
    """Ports whose cluster bus port (port + 10000) is free and valid too."""
    rng = random.Random()
    ports = []
    while len(ports) < n:
        p = rng.randrange(20000, 30000)
        if p not in ports and _free(p) and _free(p + 10000):
            ports.append(p)
    return ports


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("cluster")
    ports = _free_ports(3)
    procs = []
    for p in ports:
        d = base / str(p)
        d.mkdir()
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(p), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", str(d / "nodes.conf"), "--dir", str(d), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL))
    try:
        for p in ports:
            wait_until(lambda p=p: _pings(p), 10, message=f"cluster node {p}")
        subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                        "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=30)
        wait_until(lambda: all(_cluster_ok(p) for p in ports), 20, 0.05, "cluster_state:ok")
        yield ports
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)


def _pings(port):
    try:
        return redis.Redis(port=port, socket_timeout=0.5).ping()
    except redis.RedisError:
        return False


def _cluster_ok(port):
    info = redis.Redis(port=port).execute_command("CLUSTER", "INFO")
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "cluster_state:ok" in text


def ok(job):
    if job.data.get("fail"):
        raise JobFailed("no", code="ERR_NO")
    job.progress(50)
    return {"n": job.data["n"]}


def test_queues_run_on_a_cluster(cluster):
    settings = make_test_settings(None, redis_url=f"redis+cluster://127.0.0.1:{cluster[0]}")
    h = Harness(settings)
    try:
        specs = [QueueSpec(name=f"q{i}", handler=ok, concurrency=4, retries=1, backoff=0.05) for i in range(6)]
        h.start(*specs)
        for spec in specs:
            h.manager.add_jobs(spec.name, [(f"{spec.name}-{i}", {"n": i}) for i in range(20)])
            h.manager.add_job(spec.name, f"{spec.name}-late", {"n": 99}, delay=0.2, priority=5)
            h.manager.add_job(spec.name, f"{spec.name}-bad", {"fail": True, "n": 0})
        deadline = time.monotonic() + 30
        for spec in specs:
            wait_until(lambda q=spec.name: h.manager.get_queue_metrics(q)["completed"] == 21,
                       max(deadline - time.monotonic(), 1), message=f"{spec.name} drained")
            bad = h.wait(spec.name, f"{spec.name}-bad")
            assert (bad.state, bad.attempts, bad.failure.code) == ("failed", 2, "ERR_NO")
            assert h.manager.get_job(spec.name, f"{spec.name}-late").result == {"n": 99}
        assert h.manager.health_check()["healthy"]
        stats = h.manager.get_queue_stats()  # one pipeline across slots
        assert {stats[s.name]["completed"] for s in specs} == {21} and {stats[s.name]["failed"] for s in specs} == {1}
        holders = [p for p in cluster if redis.Redis(port=p).dbsize() > 0]
        assert len(holders) >= 2  # the queues spread over the nodes
    finally:
        h.close()


def test_schedule_ticks_and_wait_for_on_a_cluster(cluster):
    """tick.lua and the scheduler's reads stay in each queue's slot; wait_for reads one slot's stream."""
    settings = make_test_settings(None, redis_url=f"redis+cluster://127.0.0.1:{cluster[0]}")
    h = Harness(settings)
    try:
        specs = [QueueSpec(name=f"s{i}", handler=ok, schedules=[Schedule(name="beat", every=1, data={"n": i})])
                 for i in range(3)]
        h.start(*specs)
        for spec in specs:
            wait_until(lambda q=spec.name: h.manager.get_queue_metrics(q)["completed"] >= 1, 10, message="a tick")
            [info] = h.manager.list_schedules(spec.name)
            assert info.schedule.name == "beat" and len(info.next_runs) == 3
        job = h.manager.add_job("s1", "w", {"n": 7})
        assert h.manager.wait_for("s1", job.id, timeout=10).result == {"n": 7}
    finally:
        h.close()
