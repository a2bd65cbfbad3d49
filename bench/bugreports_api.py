"""Intake API throughput: POST /api/v1/reports under uvicorn against real Redis and SQLite/PostgreSQL.

    .venv/bin/python bench/bugreports_api.py [--n 300] [--concurrency 8] [--db sqlite|postgres]

Prints requests/s and latency percentiles for three bodies: title only, a 30 KB PNG screenshot,
and a 158 KB rrweb replay plus the screenshot. Uses its own Redis key prefix and table, removed after.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import redis
import uvicorn
from jobq import Settings
from jobq_bugreports.api import create_app
from jobq_bugreports.intake import fallback_specs
from jobq_bugreports.projects import ApiKeys
from jobq_bugreports.store import ReportStore

CORPORA = Path("/work/shared/corpora")
KEY = "bench-key-0123456789abcdef"


def bodies() -> dict[str, bytes]:
    png = (CORPORA / "images/valid/hopper.png").read_bytes()
    shot = "data:image/png;base64," + base64.b64encode(png).decode()
    events = json.loads((CORPORA / "replays/rrweb-player-demoit-2018.json").read_text())
    return {
        "title only": json.dumps({"title": "bench"}).encode(),
        "screenshot 30 KB": json.dumps({"title": "bench", "screenshot": shot}).encode(),
        "replay 158 KB + screenshot": json.dumps(
            {"title": "bench", "screenshot": shot, "sessionReplay": {"events": events}}).encode(),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="jobq-bench-api-"))
    prefix = f"jobqbench-{uuid.uuid4().hex[:8]}"
    settings = Settings.from_env(prefix=prefix, storage_url=str(tmp / "storage"))
    table = f"bench_reports_{uuid.uuid4().hex[:8]}"
    url = f"sqlite:///{tmp / 'reports.db'}" if args.db == "sqlite" else "postgresql://postgres@127.0.0.1:5432/test"
    store = ReportStore(url, table=table)
    app = create_app(settings=settings, store=store, api_keys=ApiKeys({"bench": KEY}), projects={},
                     specs=fallback_specs())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    headers = {"X-API-Key": KEY, "Content-Type": "application/json"}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=60,
                          limits=httpx.Limits(max_connections=args.concurrency)) as client:
            for name, body in bodies().items():
                def one(_: int, body: bytes = body) -> float:
                    t0 = time.perf_counter()
                    r = client.post("/api/v1/reports", content=body)
                    assert r.status_code == 201, r.text
                    return time.perf_counter() - t0

                with ThreadPoolExecutor(args.concurrency) as pool:
                    list(pool.map(one, range(min(20, args.n))))  # warm-up
                    t0 = time.perf_counter()
                    lat = sorted(pool.map(one, range(args.n)))
                    wall = time.perf_counter() - t0
                q = statistics.quantiles(lat, n=100)
                print(f"{name:28s} {args.n / wall:7.0f} req/s   p50 {q[49] * 1000:6.1f} ms   "
                      f"p95 {q[94] * 1000:6.1f} ms   ({args.db}, concurrency {args.concurrency})")
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()
        client_r = redis.Redis.from_url(settings.redis_url)
        for key in client_r.scan_iter(match=f"{prefix}:*", count=1000):
            client_r.delete(key)
        client_r.close()
        if args.db == "postgres":
            import psycopg

            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"DROP TABLE IF EXISTS {table}")


if __name__ == "__main__":
    main()
