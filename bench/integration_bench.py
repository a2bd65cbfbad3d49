"""Integration plugin: jobs/s and per-job latency through a real worker against fake vendor servers.

    .venv/bin/python bench/integration_bench.py [--jobs 200] [--platforms jira,github,linear,slack]
                                                [--concurrency 10]

For each platform: one worker (concurrency 10, as shipped) on real Redis, a fake vendor API on
127.0.0.1 (jobq_plugin_integration.testing) in a process of its own, and a SQLite report store. ``--jobs`` reports are
synced once (create) and then again (update). Prints jobs/s, handler time p50/p95 (started →
finished, Redis clock) and the TCP connections the fake saw, which shows connection reuse.
Figures measure the plugin's own overhead (validation, rendering, store, lock, HTTP); real
vendors add their latency, tens to hundreds of milliseconds per call.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs
import redis
from jobq.testing import Harness, delete_prefix, make_test_settings


def serve_fake(platform: str, conn: Any) -> None:
    """Child process: run the fake vendor (its own GIL), send back its URL and payload parts, then
    its connection count when told to stop."""
    from jobq_plugin_integration.testing import FakeGitHub, FakeJira, FakeLinear, FakeSlack

    if platform == "jira":
        fake: Any = FakeJira().start()
        extra = {"credentials": {"email": "dev@example.com", "apiToken": fake.api_token},
                 "config": {"siteUrl": fake.url, "projectKey": "BUG"}}
    elif platform == "github":
        fake = FakeGitHub().start()
        extra = {"credentials": {"token": fake.token}, "config": {"owner": "octo", "repo": "app", "apiUrl": fake.url}}
    elif platform == "linear":
        fake = FakeLinear().start()
        extra = {"credentials": {"apiKey": fake.api_key}, "config": {"teamId": "team-eng", "apiUrl": fake.api_url}}
    else:
        fake = FakeSlack().start()
        extra = {"credentials": {"botToken": fake.bot_token},
                 "config": {"channel": "C0123456789", "apiUrl": fake.api_url}}
    conn.send(extra)
    while conn.recv() == "count":
        conn.send(fake.connections)
    fake.stop()


def run_pass(h: Harness, platform: str, extra: dict[str, Any], n: int, tag: str) -> tuple[float, list[float]]:
    jobs = [(f"{tag}-{platform}-{i}", {"bugReportId": f"r{i}", "projectId": "bench", "platform": platform,
                                      "report": {"title": f"Bench report {i}", "severity": "high",
                                                 "description": "Steps to reproduce\n\n" + "x" * 400},
                                      **extra}) for i in range(n)]
    start = time.perf_counter()
    h.manager.add_jobs("integrations", jobs)
    done = [h.wait("integrations", job_id, timeout=120) for job_id, _ in jobs]
    elapsed = time.perf_counter() - start
    failed = [j for j in done if j.state != "completed"]
    if failed:
        raise SystemExit(f"{len(failed)} {platform} jobs failed, e.g. {failed[0].failure}")
    durations = [(j.finished_at - j.started_at) * 1000 for j in done if j.finished_at and j.started_at]
    return n / elapsed, durations


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--platforms", default="jira,github,linear,slack")
    parser.add_argument("--concurrency", type=int, default=10, help="the worker's (shipped: 10)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="jobq-int-bench-"))
    os.environ.update(JOBQ_OUTBOUND_ALLOWLIST="127.0.0.1", JOBQ_INTEGRATION_ALLOW_HTTP="1",
                      DATABASE_URL=f"sqlite:///{tmp / 'reports.db'}", JOBQ_PREFIX=f"jobq-int-bench-{os.getpid()}")
    import jobq_plugin_integration

    (spec,) = jobq_plugin_integration.jobq_queues()
    spec = attrs.evolve(spec, concurrency=args.concurrency)
    print(f"{'platform':<8} {'pass':<7} {'jobs/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'connections':>12}")
    ctx = multiprocessing.get_context("spawn")
    for platform in args.platforms.split(","):
        settings = make_test_settings()
        h = Harness(settings)
        conn, child_conn = ctx.Pipe()
        child = ctx.Process(target=serve_fake, args=(platform, child_conn), daemon=True)
        child.start()
        extra = conn.recv()
        try:
            h.start(spec)
            for tag in ("create", "update"):
                conn.send("count")
                before = conn.recv()
                rate, durations = run_pass(h, platform, extra, args.jobs, tag)
                conn.send("count")
                print(f"{platform:<8} {tag:<7} {rate:>8.0f} {statistics.median(durations):>8.1f} "
                      f"{pct(durations, 0.95):>8.1f} {conn.recv() - before:>12}")
        finally:
            h.close()
            conn.send("stop")
            child.join(10)
            client = redis.Redis.from_url(settings.redis_url)
            delete_prefix(client, settings.prefix)
            delete_prefix(client, os.environ["JOBQ_PREFIX"])
            client.close()


if __name__ == "__main__":
    main()
