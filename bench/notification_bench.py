"""Notification throughput: signed webhooks to a local receiver through a real worker at concurrency 5.

    .venv/bin/python bench/notification_bench.py [--jobs 200] [--latency-ms 0] [--db sqlite|postgres]

Runs two shapes (1 recipient per job, and 5 per job) against real Redis, a receiver on 127.0.0.2 that
verifies nothing and answers 200 (optionally after ``--latency-ms``), and the bug-report store that holds
the delivery records. Prints notifications per second and the per-recipient time, to compare with the
reference system's ~300 ms per recipient. Uses its own Redis key prefix and database, removed after.
"""

from __future__ import annotations

import argparse
import http.server
import os
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import redis
from jobq.testing import Harness, delete_prefix, make_test_settings, wait_until
from jobq_plugin_notification import QUEUE, jobq_queues
from jobq_plugin_notification.handler import close_stores

RECEIVER_HOST = "127.0.0.2"
SECRET = "whsec_YmVuY2htYXJrLXNlY3JldC1mb3Itbm90aWZpY2F0aW9ucw=="


class Receiver(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, latency: float) -> None:
        super().__init__((RECEIVER_HOST, 0), _Handler)
        self.latency = latency
        self.count = 0
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server: Receiver = self.server  # type: ignore[assignment]
        if server.latency:
            time.sleep(server.latency)
        with server.lock:
            server.count += 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


def run(h: Harness, receiver: Receiver, jobs: int, per_job: int, tag: str) -> None:
    before = receiver.count
    report = {"title": "Bench report", "description": "x" * 500, "severity": "high", "url": None}
    batch = []
    for i in range(jobs):
        recipients = [f"http://{RECEIVER_HOST}:{receiver.server_address[1]}/hook/{i}/{r}" for r in range(per_job)]
        data = {
            "bugReportId": f"bench-{tag}-{i}",
            "projectId": "bench",
            "type": "webhook",
            "recipients": recipients,
            "event": "created",
            "report": report,
        }
        batch.append((f"{tag}-{i}", data))

    def finished() -> dict[str, int]:
        m = h.manager.get_queue_metrics(QUEUE)
        return {"done": m["completed"] + m["failed"], "failed": m["failed"]}

    base = finished()
    start = time.perf_counter()
    h.manager.add_jobs(QUEUE, batch)
    wait_until(lambda: finished()["done"] >= base["done"] + jobs, timeout=600, interval=0.02, message="all jobs")
    failed = finished()["failed"] - base["failed"]
    elapsed = time.perf_counter() - start
    sent = receiver.count - before
    durations = []
    for job_id, _ in batch[:: max(1, jobs // 100)]:
        job = h.manager.get_job(QUEUE, job_id)
        if job and job.started_at and job.finished_at:
            durations.append(job.finished_at - job.started_at)
    print(
        f"{per_job} recipient(s)/job, {jobs} jobs: {sent} deliveries in {elapsed:.2f}s "
        f"= {sent / elapsed:.0f} notifications/s; failed jobs {failed}"
    )
    if durations:
        med = statistics.median(durations)
        print(
            f"    job time median {med * 1000:.1f} ms, {med * 1000 / per_job:.1f} ms per recipient "
            f"(reference: ~300 ms per recipient)"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="jobq-bench-notify-"))
    table = f"bench_notify_{uuid.uuid4().hex[:8]}"
    os.environ.update(
        {
            "DATABASE_URL": f"sqlite:///{tmp / 'reports.db'}"
            if args.db == "sqlite"
            else "postgresql://postgres@127.0.0.1:5432/test",
            "JOBQ_REPORTS_TABLE": table,
            "JOBQ_OUTBOUND_ALLOWLIST": RECEIVER_HOST,
            "WEBHOOK_SECRET": SECRET,
        }
    )
    spec = jobq_queues()[0]
    receiver = Receiver(args.latency_ms / 1000)
    settings = make_test_settings(tmp)
    h = Harness(settings)
    try:
        h.start(spec)
        print(f"worker concurrency {spec.concurrency}, receiver latency {args.latency_ms:.0f} ms, db {args.db}")
        run(h, receiver, args.jobs, 1, "one")
        run(h, receiver, max(1, args.jobs // 5), 5, "five")
    finally:
        h.close()
        client = redis.Redis.from_url(settings.redis_url)
        delete_prefix(client, settings.prefix)
        client.close()
        close_stores()
        if args.db == "postgres":
            import psycopg

            with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
                conn.execute(f"DROP TABLE IF EXISTS {table}")  # the benchmark's own table
        receiver.shutdown()


if __name__ == "__main__":
    main()
