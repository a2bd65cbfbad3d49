"""Dashboard page times with a big queue, and the bytes the per-minute history costs.

Run by hand from the repository's .venv (Redis at ``REDIS_URL``, default 127.0.0.1:6379):

    .venv/bin/python bench/dashboard_bench.py [--waiting 1000000] [--failed 100000] [--rounds 20] [--json]

Fills one queue with ``--waiting`` waiting jobs and ``--failed`` failed ones (written straight into
Redis in pipelines, the shape enqueue.lua and fail.lua leave), then requests every page ``--rounds``
times in-process through Starlette's test client, signed in as an admin, and prints p50 and max in ms
(Redis round trips, template rendering and the ASGI stack included; no network). The history part
fills a day of minute hashes with every field set (the worst case) and sums ``MEMORY USAGE``.
Every key of a run carries a unique prefix and is deleted afterwards (SCAN + UNLINK).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid

import redis
from jobq.config import Settings
from jobq.history import BUCKETS_MS
from jobq.keys import QueueKeys, queues_key
from jobq.plugins import PluginHost
from jobq_dashboard.app import create_app
from jobq_dashboard.auth import User, hash_password
from starlette.testclient import TestClient

QUEUE = "bench"


def fill(client: redis.Redis, k: QueueKeys, waiting: int, failed: int) -> None:
    now = int(time.time() * 1000)
    batch = 10_000
    for start in range(0, waiting, batch):
        pipe = client.pipeline(transaction=False)
        ids = [f"w{i:07d}" for i in range(start, min(start + batch, waiting))]
        for i in ids:
            pipe.hset(k.job(i), mapping={"data": '{"url":"https://example.com/page","n":1}', "name": "shot",
                                         "state": "waiting", "created": now, "prio": 0})
        pipe.lpush(k.wait, *ids)
        pipe.execute()
    codes = ("ERR_TIMEOUT", "ERR_HTTP_502", "ERR_STALLED", "ERR_INVALID")
    for start in range(0, failed, batch):
        pipe = client.pipeline(transaction=False)
        scores = {}
        for n in range(start, min(start + batch, failed)):
            i = f"f{n:07d}"
            pipe.hset(k.job(i), mapping={"data": '{"url":"https://example.com/x"}', "name": "shot",
                                         "state": "failed", "created": now - n, "finished": now - n, "att": 4,
                                         "fails": 4, "code": codes[n % 4], "error": "upstream said no",
                                         "stack": "Traceback (most recent call last):\n  ...\nError: no\n"})
            scores[i] = now - n
        pipe.zadd(k.failed, scores)
        pipe.execute()
    client.sadd(queues_key(k.prefix), QUEUE)


def history_bytes(client: redis.Redis, k: QueueKeys) -> tuple[int, int]:
    """(bytes of one full minute hash, bytes of a day of them)."""
    base = int(time.time() // 60) - 2000  # minutes no live script writes to
    pipe = client.pipeline(transaction=False)
    fields = {"c": 123456, "f": 1234, "r": 2345, "s": 12, "ds": 987654321}
    fields.update({f"d{i}": 10_000 + i for i in range(1, len(BUCKETS_MS) + 2)})
    for m in range(base, base + 1440):
        pipe.hset(k.hist(m), mapping=fields)
        pipe.pexpire(k.hist(m), 90_000_000)
    pipe.execute()
    pipe = client.pipeline(transaction=False)
    for m in range(base, base + 1440):
        pipe.memory_usage(k.hist(m), samples=0)
    sizes = pipe.execute()
    return sizes[0], sum(sizes)


def cleanup(client: redis.Redis, prefix: str) -> None:
    batch = []
    for key in client.scan_iter(match=f"{prefix}:*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            client.unlink(*batch)
            batch = []
    if batch:
        client.unlink(*batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--waiting", type=int, default=1_000_000)
    ap.add_argument("--failed", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"jobqbench-{uuid.uuid4().hex[:8]}"
    settings = Settings.from_env(redis_url=url, prefix=prefix)
    client = redis.Redis.from_url(url)
    k = QueueKeys(prefix, QUEUE)
    out: dict[str, object] = {"waiting": a.waiting, "failed": a.failed, "rounds": a.rounds}
    try:
        t = time.perf_counter()
        fill(client, k, a.waiting, a.failed)
        out["fill_seconds"] = round(time.perf_counter() - t, 1)
        one, day = history_bytes(client, k)
        out["history_bytes_per_minute"], out["history_bytes_per_day"] = one, day
        users = {"admin": User("admin", "admin", hash_password("bench-password", log2n=10))}
        app = create_app(settings, users=users, secret_key="bench", host=PluginHost(group="jobq.none").load())
        pages = {
            "overview": "/",
            "queue waiting, first page": f"/queues/{QUEUE}?state=waiting",
            "queue waiting, page at 500,000": f"/queues/{QUEUE}?state=waiting&offset=500000",
            "queue failed, first page": f"/queues/{QUEUE}?state=failed",
            "queue failed, page at 90,000": f"/queues/{QUEUE}?state=failed&offset=90000",
            "queue failed, filter by code (5,000 scanned)": f"/queues/{QUEUE}?state=failed&code=ERR_NONE",
            "queue failed, filter by id prefix": f"/queues/{QUEUE}?state=failed&id=f00099",
            "job": f"/queues/{QUEUE}/jobs/f0000007",
            "workers": "/workers",
            "audit": "/audit",
        }
        with TestClient(app, base_url="http://127.0.0.1") as c:
            login = c.get("/login").text
            csrf = login.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            c.post("/login", data={"username": "admin", "password": "bench-password", "csrf": csrf})
            times: dict[str, dict[str, float]] = {}
            for name, path in pages.items():
                assert c.get(path).status_code == 200, path  # warm-up
                samples = []
                for _ in range(a.rounds):
                    t = time.perf_counter()
                    r = c.get(path)
                    samples.append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200
                times[name] = {"p50_ms": round(statistics.median(samples), 1), "max_ms": round(max(samples), 1)}
        out["pages"] = times
    finally:
        cleanup(client, prefix)
        client.close()
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print(f"queue {QUEUE!r}: {a.waiting:,} waiting, {a.failed:,} failed (filled in {out['fill_seconds']} s); "
          f"{a.rounds} requests per page")
    for name, t in out["pages"].items():  # type: ignore[union-attr]
        print(f"  {name:<48} p50 {t['p50_ms']:>7.1f} ms   max {t['max_ms']:>7.1f} ms")
    print(f"history: {out['history_bytes_per_minute']} bytes per full minute hash, "
          f"{int(out['history_bytes_per_day']) / 1024:.0f} KiB per queue per day (1,440 minutes, every field set)")


if __name__ == "__main__":
    main()
