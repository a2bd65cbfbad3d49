"""Which Redis the demo talks to: the one at ``REDIS_URL`` when it answers, else one started for the
demo alone (a local ``redis-server`` on a free port, else fakeredis's TCP server in this process).

The started ones live in ``.demo/`` and stop with the demo. fakeredis is a test double: the demo
says so and it must never serve real jobs.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import redis
from jobq.redaction import redact

DEFAULT_URL = "redis://127.0.0.1:6379/0"


@attrs.define
class DemoRedis:
    url: str
    label: str
    stop: Callable[[], None] = lambda: None


def answers(url: str, timeout: float = 1.0) -> bool:
    """Whether a Redis at ``url`` answers PING within ``timeout`` seconds."""
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    except ValueError:
        return False
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(url: str, alive: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and alive():
        if answers(url, 0.5):
            return True
        time.sleep(0.05)
    return False


def start_redis_server(workdir: Path) -> DemoRedis:
    """A throw-away ``redis-server`` on a free loopback port, data in ``workdir`` (never saved)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--bind", "127.0.0.1", "--port", str(port),
         "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction", "--dir", str(workdir),
         "--logfile", str(workdir / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    if not _wait_for(url, lambda: proc.poll() is None):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"redis-server did not start; see {workdir / 'redis.log'}")

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    return DemoRedis(url, f"{url} (redis-server started for the demo, pid {proc.pid})", stop)


def _ensure_lua() -> None:
    """fakeredis runs Lua scripts only with ``lupa`` installed, and jobq's engine is all Lua scripts."""
    if importlib.util.find_spec("lupa") is not None:
        return
    print("  fakeredis needs lupa to run Lua scripts: pip install 'lupa>=2.0'", flush=True)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "lupa>=2.0"], check=False)
    importlib.invalidate_caches()
    if done.returncode != 0 or importlib.util.find_spec("lupa") is None:
        raise RuntimeError("could not install lupa, so fakeredis cannot run jobq's Lua scripts")


def start_fakeredis() -> DemoRedis:
    """fakeredis's TCP server in a thread of this process: enough for the demo, NOT for production
    (in memory only, one process, no persistence, Lua through lupa)."""
    _ensure_lua()
    from fakeredis import TcpFakeServer

    port = free_port()
    server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    thread = threading.Thread(target=server.serve_forever, name="demo-fakeredis", daemon=True)
    thread.start()
    url = f"redis://127.0.0.1:{port}/0"
    if not _wait_for(url, thread.is_alive, 5.0):
        raise RuntimeError("fakeredis TCP server did not answer")
    client = redis.Redis.from_url(url)
    try:
        client.eval("return redis.call('TIME')", 0)
    except redis.ResponseError as exc:
        raise RuntimeError(f"fakeredis cannot run Lua scripts ({exc}); install redis-server instead "
                           "(apt-get install redis-server)") from None
    finally:
        client.close()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return DemoRedis(url, f"{url} (fakeredis in the demo process: NOT FOR PRODUCTION)", stop)


def _apt_install_redis() -> bool:
    """Last resort on a Debian-like machine where we are root: ``apt-get install redis-server``."""
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return False
    print("  installing redis-server with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "redis-server"]):
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=False)
    return shutil.which("redis-server") is not None


def choose(workdir: Path) -> DemoRedis:
    """``REDIS_URL`` (default 127.0.0.1:6379) if it answers, else a local redis-server started for the
    demo, else fakeredis (with lupa for Lua), else redis-server installed with apt-get."""
    url = os.environ.get("REDIS_URL") or DEFAULT_URL
    if answers(url):
        return DemoRedis(url, f"{redact(url)} (already running)")
    print(f"  no Redis answers at {redact(url)}; starting one for the demo", flush=True)
    if shutil.which("redis-server"):
        return start_redis_server(workdir)
    try:
        return start_fakeredis()
    except (RuntimeError, ImportError) as exc:
        print(f"  fakeredis unusable: {exc}", flush=True)
    if _apt_install_redis():
        return start_redis_server(workdir)
    raise RuntimeError("no Redis: start one and set REDIS_URL, or install redis-server")
