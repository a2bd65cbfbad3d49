"""The cost of schedule ticks: Redis time per tick (won and lost) and worker CPU per tick.

Runs against a private ``redis-server`` it starts on a free loopback port, so ``INFO commandstats``
counts this benchmark's commands only. Usage::

    .venv/bin/python bench/schedule_bench.py [--seconds 10] [--schedules 1,100] [--workers 3]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import redis
from jobq import QueueManager, QueueSpec, Schedule, Settings
from jobq.keys import QueueKeys
from jobq.queue import _run_sync
from jobq.schedules import _parse_hash


def noop(job: Any) -> None:
    return None


def spec(n_schedules: int) -> QueueSpec:
    return QueueSpec(name="ticks", handler=noop, concurrency=8,
                     schedules=[Schedule(name=f"s{i}", every=1) for i in range(n_schedules)])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(tmp: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(200):
        try:
            redis.Redis.from_url(url).ping()
            return proc, url
        except redis.ConnectionError:
            time.sleep(0.02)
    raise SystemExit("redis-server did not start")


def evalsha_stats(r: redis.Redis) -> tuple[int, int]:
    s = r.info("commandstats").get("cmdstat_evalsha", {})
    return int(s.get("calls", 0)), int(s.get("usec", 0))


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def script_cost(url: str, n: int = 2000) -> dict[str, float]:
    """Redis time of tick.lua alone: a won tick (enqueues one job) and a lost one (RACE)."""
    settings = Settings(redis_url=url, prefix="bench-ticks")
    m = QueueManager(settings, [spec(0)])
    s = Schedule(name="t", every=1)
    m.add_schedule("ticks", s)
    k = QueueKeys(settings.prefix, "ticks")
    out = {}
    for label in ("won", "lost"):
        calls0, usec0 = evalsha_stats(m.redis)
        t0 = time.perf_counter()
        for _ in range(n):
            stored = _parse_hash("ticks", m.redis.hgetall(k.schedules))["t"]
            tick = int(stored.last) + 1000
            if label == "lost":
                stored = type(stored)(stored.raw, stored.schedule, "0", stored.paused)
            _run_sync(m.redis, m.scripts, m._tick("ticks", [(stored, [tick], tick)]))
        wall = time.perf_counter() - t0
        calls, usec = evalsha_stats(m.redis)
        out[f"{label}_redis_us"] = (usec - usec0) / (calls - calls0)
        out[f"{label}_roundtrip_us"] = wall / n * 1e6  # includes the HGETALL that reads the state
    m.redis.flushdb()
    m.shutdown()
    return out


def worker_cost(url: str, n_schedules: int, workers: int, seconds: float, paused: bool) -> dict[str, float]:
    """Worker processes serving a queue with ``n_schedules`` schedules ticking every second; with the
    queue ``paused`` the tick jobs pile up unrun, so the figures are the ticking alone."""
    settings = Settings(redis_url=url, prefix=f"bench-w{n_schedules}")
    r = redis.Redis.from_url(url)
    state = "paused" if paused else "completed"
    if paused:
        QueueManager(settings, [spec(0)]).pause_queue("ticks")
    cfg = json.dumps({"redis_url": url, "prefix": settings.prefix, "n": n_schedules})
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", cfg]) for _ in range(workers)]
    try:
        m = QueueManager(settings, [spec(n_schedules)])
        deadline = time.monotonic() + 30
        while len([w for w in m.list_workers() if w["alive"]]) < workers and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)  # past start-up: registration, imports, the first round
        cpu0 = sum(cpu_seconds(p.pid) for p in procs)
        calls0, usec0 = evalsha_stats(r)
        jobs0 = m.get_queue_metrics("ticks")[state]
        time.sleep(seconds)
        cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu0
        calls, usec = evalsha_stats(r)
        jobs = m.get_queue_metrics("ticks")[state] - jobs0
        m.shutdown()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    r.flushdb()
    r.close()
    return {"schedules": n_schedules, "workers": workers, "seconds": seconds, "jobs": jobs, "paused": paused,
            "worker_cpu_ms_per_s": cpu / seconds * 1000, "worker_cpu_us_per_tick": cpu / max(jobs, 1) * 1e6,
            "redis_script_ms_per_s": (usec - usec0) / 1000 / seconds, "scripts_per_s": (calls - calls0) / seconds}


def scheduler_cost(url: str, n_schedules: int, schedulers: int, seconds: float) -> dict[str, float]:
    """``schedulers`` scheduler tasks (each a worker's, without the rest of the worker) in this process,
    ticking ``n_schedules`` schedules every second into a queue nobody serves: the ticking's own CPU."""
    import asyncio

    from jobq.queue import make_client
    from jobq.schedules import Scheduler
    from jobq.scripts import Scripts
    from jobq.worker import Worker

    settings = Settings(redis_url=url, prefix=f"bench-s{n_schedules}")

    async def main() -> dict[str, float]:
        ws = []
        for _ in range(schedulers):
            w = Worker([spec(n_schedules)], settings)
            w.client = make_client(settings, asyncio=True)
            w.scripts = Scripts(w.client)
            w.scheduler = Scheduler(w)
            ws.append(w)
        tasks = [asyncio.create_task(w.scheduler.run()) for w in ws]  # type: ignore[union-attr]
        await asyncio.sleep(2)  # registration and the first round
        ticks0, cpu0 = sum(w.scheduler.ticks for w in ws), time.process_time()  # type: ignore[union-attr]
        await asyncio.sleep(seconds)
        ticks, cpu = sum(w.scheduler.ticks for w in ws) - ticks0, time.process_time() - cpu0  # type: ignore[union-attr]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in ws:
            await w.client.aclose()
        return {"ticks": ticks, "cpu_ms_per_s": cpu / seconds * 1000, "cpu_us_per_tick": cpu / max(ticks, 1) * 1e6}

    out = asyncio.run(main())
    r = redis.Redis.from_url(url)
    r.flushdb()
    r.close()
    return out


def run_worker(cfg: dict[str, Any]) -> None:
    from jobq.worker import Worker

    settings = Settings(redis_url=cfg["redis_url"], prefix=cfg["prefix"])
    Worker([spec(cfg["n"])], settings, presence_interval=1.0).run_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--schedules", default="0,1,100")
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        run_worker(json.loads(args.worker))
        return
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_redis(tmp)
        try:
            c = script_cost(url)
            print(f"tick.lua, one job: won {c['won_redis_us']:.1f} us of Redis time "
                  f"({c['won_roundtrip_us']:.0f} us round trip with the state read), "
                  f"lost (RACE) {c['lost_redis_us']:.1f} us ({c['lost_roundtrip_us']:.0f} us)")
            for n in (int(x) for x in args.schedules.split(",") if int(x)):
                for k in (1, args.workers):
                    c = scheduler_cost(url, n, k, args.seconds)
                    print(f"{n:>4} schedules every 1 s, {k} scheduler task(s) alone in one process: {c['ticks']} "
                          f"ticks; CPU {c['cpu_ms_per_s']:.1f} ms/s, {c['cpu_us_per_tick']:.0f} us per tick")
            for n in (int(x) for x in args.schedules.split(",")):
                for paused in (True, False):
                    w = worker_cost(url, n, args.workers, args.seconds, paused)
                    what = "ticking only (queue paused)" if paused else "ticking + running the jobs"
                    per_tick = f" ({w['worker_cpu_us_per_tick']:.0f} us per tick)" if w["jobs"] else ""
                    print(f"{n:>4} schedules every 1 s, {w['workers']} workers, {w['seconds']:.0f} s, {what}: "
                          f"{w['jobs']} jobs; worker CPU {w['worker_cpu_ms_per_s']:.1f} ms/s in all{per_tick}; "
                          f"Redis script time {w['redis_script_ms_per_s']:.2f} ms/s over {w['scripts_per_s']:.0f} "
                          "scripts/s")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
