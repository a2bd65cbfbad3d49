"""Operating on real Redis setups: a restricted ACL user, and a Redis that may evict keys."""

import logging
import shutil
import socket
import subprocess
import uuid

import attrs
import pytest
import redis
from jobq import QueueSpec
from jobq.testing import Harness, wait_until


def ok(job):
    return {"ok": job.data["n"]}


SPEC = QueueSpec(name="acl", handler=ok)


def test_runs_as_acl_user_limited_to_its_prefix(jobq_settings, rclient):
    user, password = f"jobq-acl-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    rclient.execute_command("ACL", "SETUSER", user, "on", f">{password}", "resetkeys", f"~{jobq_settings.prefix}:*",
                            "resetchannels", "+@all", "-@admin", "-@dangerous")
    try:
        url = jobq_settings.redis_url.replace("redis://", f"redis://{user}:{password}@")
        h = Harness(attrs.evolve(jobq_settings, redis_url=url))
        try:
            job = h.run(SPEC, {"n": 5})
            assert job.state == "completed" and job.result == {"ok": 5}
            assert h.manager.health_check()["healthy"]
            restricted = redis.Redis.from_url(url)
            with pytest.raises(redis.exceptions.NoPermissionError):
                restricted.flushall()
            with pytest.raises(redis.exceptions.NoPermissionError):
                restricted.get("someone-else:key")
            restricted.close()
        finally:
            h.close()
    finally:
        rclient.execute_command("ACL", "DELUSER", user)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_warns_when_redis_may_evict_keys(jobq_settings, caplog, tmp_path):
    port = _free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--maxmemory-policy", "allkeys-lru", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        wait_until(lambda: _pings(url), 10)
        h = Harness(attrs.evolve(jobq_settings, redis_url=url))
        try:
            with caplog.at_level(logging.WARNING, logger="jobq.worker"):
                assert h.run(SPEC, {"n": 1}).state == "completed"
            assert any("allkeys-lru" in r.getMessage() and "noeviction" in r.getMessage() for r in caplog.records)
        finally:
            h.close()
    finally:
        server.kill()
        server.wait(10)


def _pings(url):
    try:
        return redis.Redis.from_url(url, socket_timeout=0.5).ping()
    except redis.RedisError:
        return False


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_runs_through_sentinel(jobq_settings, tmp_path):
    """``redis+sentinel://`` finds the master through a real Sentinel on loopback."""
    master_port, sentinel_port = _free_port(), _free_port()
    master = subprocess.Popen(["redis-server", "--port", str(master_port), "--bind", "127.0.0.1", "--save", "",
                               "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                    f"sentinel monitor jobqmaster 127.0.0.1 {master_port} 1\n")
    sentinel = subprocess.Popen(["redis-server", str(conf), "--sentinel"], stdout=subprocess.DEVNULL)
    try:
        wait_until(lambda: _pings(f"redis://127.0.0.1:{master_port}/0"), 10)
        wait_until(lambda: _pings(f"redis://127.0.0.1:{sentinel_port}/0"), 10)
        url = f"redis+sentinel://127.0.0.1:{sentinel_port}/jobqmaster/0"
        h = Harness(attrs.evolve(jobq_settings, redis_url=url))
        try:
            assert h.run(SPEC, {"n": 3}).result == {"ok": 3}
            direct = redis.Redis(port=master_port)
            assert direct.exists(f"{jobq_settings.prefix}:queues")
            direct.close()
        finally:
            h.close()
    finally:
        for p in (sentinel, master):
            p.kill()
            p.wait(10)
