"""Per-job cost of OpenTelemetry tracing: the same drain of no-op jobs with tracing off and on.

    .venv/bin/python bench/tracing_bench.py [--jobs 20000] [--rounds 3]

"off" is a worker with no tracer (``jobq.tracing.TRACER is None``: one check per job, no import);
"on" records a producer span per bulk enqueue and a consumer span per attempt through the SDK with a
batch processor and an exporter that drops the spans (the cost of jobq's instrumentation and the SDK,
not of a network). Each round drains ``--jobs`` jobs bulk-added up front through one in-process
worker (concurrency 100); the best of the interleaved rounds is kept. Prints jobs/s and µs per job.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid

from jobq import QueueSpec, Settings, tracing
from jobq.keys import delete_prefix
from jobq.queue import QueueManager, make_client
from jobq.worker import Worker


async def noop(job):
    return None


def drain(settings: Settings, n: int) -> float:
    spec = QueueSpec(name="tb", handler=noop, concurrency=100)
    m = QueueManager(settings, [spec])
    for i in range(0, n, 1000):
        m.add_jobs("tb", [(None, {}) for _ in range(min(1000, n - i))])
    worker = Worker([spec], settings)

    async def run() -> float:
        task = asyncio.create_task(worker.run())
        client = make_client(settings, asyncio=True)
        key = m.keys("tb").completed
        t0 = None
        while True:
            done = await client.zcard(key)
            if t0 is None and done:
                t0, first = time.perf_counter(), done
            if done >= n:
                break
            await asyncio.sleep(0.003)
        elapsed = time.perf_counter() - t0
        worker.stop()
        await task
        await client.aclose()
        return (n - first) / elapsed

    rate = asyncio.run(run())
    m.purge("tb", "completed")
    m.shutdown()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop(), max_queue_size=100_000))
    settings = Settings.from_env(prefix=f"jobqbench-{uuid.uuid4().hex[:8]}", retention_completed_count=-1)
    best = {"off": 0.0, "on": 0.0}
    try:
        for _ in range(args.rounds):
            for mode in ("off", "on"):
                if mode == "on":
                    tracing.enable(provider)
                else:
                    tracing.disable()
                best[mode] = max(best[mode], drain(settings, args.jobs))
    finally:
        tracing.disable()
        c = make_client(settings)
        delete_prefix(c, settings.prefix)
        c.close()
    for mode, rate in best.items():
        print(f"tracing {mode:<3}  {rate:>9,.0f} jobs/s  {1e6 / rate:6.1f} µs/job")
    print(f"cost of tracing on: {1e6 / best['on'] - 1e6 / best['off']:.1f} µs/job "
          f"({best['off'] / best['on']:.2f}x); python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
