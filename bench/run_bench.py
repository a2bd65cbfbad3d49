"""``jobq run`` as users run it, next to the bare engine and BullMQ in one run; then scale-out.

Run by hand from the repository's environment (every shipped plugin installed), after
``bench/setup.sh`` installed BullMQ's Node packages:

    .venv/bin/pip install -e 'core[speed]'     # uvloop, as the jobq[speed] extra installs it
    .venv/bin/python bench/run_bench.py [--rounds 3] [--jobs 20000] [--json]
    .venv/bin/python bench/run_bench.py --scale 1,2,4 [--cluster]

Drain: ``--jobs`` jobs are enqueued in bulk, then one worker process is started on the full
queue; *start-up excluded* is timed from its first finished job to the last (as core_bench.py
does), *start-up included* from the process spawn to the last job. Systems:

* ``jobq run``: the real CLI (``peers/jobq_run_app.py``): every plugin found on ``jobq.plugins``
  loaded with its hooks and queues, the metrics plugin on and ``/metrics`` served, one bench queue;
* ``engine``: ``Worker([spec])`` alone (``peers/jobq_worker.py``), no plugin host;
* ``BullMQ``: one Node ``Worker`` (``peers/bullmq/worker.mjs``).

Handlers: ``noop`` reads its data and returns; ``incr`` also does one Redis ``INCR`` (jobq through
``job.redis``, BullMQ through an ioredis client). Latency: 600 jobs at 300/s to an idle worker,
enqueue→start as core_bench.py measures it. Rounds interleave the systems; each figure keeps its best.

``--scale``: ``jobq run --processes N`` for each N on one Redis, reading Redis's own CPU time
(``INFO cpu``) over the drain to give Redis µs per job; ``--cluster`` repeats it on a 3-master
Redis Cluster on loopback with three queues, one per master, against the same three queues on one
Redis. Every key of a run carries a unique tag and is deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "peers")]
import core_bench as cb  # noqa: E402
from systems import PEERS, Bullmq, Jobq, Run  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Engine(Jobq):
    key = "engine"
    label = "engine (Worker)"

    def __init__(self, run: Run, handler: str) -> None:
        super().__init__(run)
        self.handler = handler

    def worker_env(self) -> dict[str, str]:
        return {**super().worker_env(), "BENCH_HANDLER": self.handler}


class JobqRun(Engine):
    key = "jobq-run"
    label = "jobq run"
    queues = 1

    def __init__(self, run: Run, handler: str, processes: int = 1) -> None:
        super().__init__(run, handler)
        self.processes = processes

    def worker_command(self) -> list[str]:
        cmd = [sys.executable, str(PEERS / "jobq_run_app.py"), "--log-level", "WARNING", "run",
               "--metrics-port", str(_free_port()), "--metrics-addr", "127.0.0.1"]
        return cmd + (["--processes", str(self.processes)] if self.processes > 1 else [])


class BullmqH(Bullmq):
    def __init__(self, run: Run, handler: str) -> None:
        super().__init__(run)
        self.handler = handler

    def worker_env(self) -> dict[str, str]:
        return {**super().worker_env(), "BENCH_HANDLER": self.handler}


def redis_cpu(r: Any) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def drain(system: Any, workdir: Path, n: int, redis_clients: list[Any] | None = None) -> dict[str, Any]:
    """Bulk-enqueue ``n`` jobs, then time one worker (or supervisor) draining them."""
    log = workdir / f"{system.key}.log"
    system.enqueue_bulk(n, 1000)
    before = system.enqueued - n
    cpu0 = [redis_cpu(c) for c in redis_clients or []]
    t_spawn = time.monotonic()
    out = cb.time_drain(system, log, lambda: system.enqueued - before - system.pending(), n, rss_after=False)
    out["with_startup_per_s"] = n / (time.monotonic() - t_spawn - (out.get("stop_s") or 0.0) -
                                     max(0.0, 0.0))
    if redis_clients:
        used = sum(redis_cpu(c) for c in redis_clients) - sum(cpu0)
        out["redis_us_per_job"] = used / n * 1e6
    return out


def compare(args: argparse.Namespace, run: Run, workdir: Path) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rnd in range(args.rounds):
        for handler in args.handlers:
            for make in (lambda h: JobqRun(run, h), lambda h: Engine(run, h), lambda h: BullmqH(run, h)):
                system = make(handler)
                try:
                    res = {"system": system.label, "handler": handler, "round": rnd}
                    t0 = time.monotonic()
                    d = drain(system, workdir, args.jobs)
                    res["drain_per_s"] = d["drain_per_s"]
                    res["with_startup_per_s"] = args.jobs / (d["drain_s"] + d["startup_s"])
                    res["startup_s"] = d["startup_s"]
                    if handler == "noop":
                        lat = cb.measure_idle_and_latency(system, workdir / f"{system.key}-lat.log", args.samples,
                                                          300, 1.0)
                        res.update(p50_ms=lat["p50_ms"], p99_ms=lat["p99_ms"], idle_rss_mib=lat["idle_rss_mib"])
                    res["wall_s"] = time.monotonic() - t0
                    rows.setdefault((system.label, handler), []).append(res)
                    print(f"  round {rnd + 1} {handler:5s} {system.label:16s} drain {d['drain_per_s']:8,.0f}/s "
                          f"with start-up {res['with_startup_per_s']:8,.0f}/s"
                          + (f"  p50 {res['p50_ms']:.2f} ms" if "p50_ms" in res else ""), file=sys.stderr,
                          flush=True)
                finally:
                    system.close()
    best = []
    for (label, handler), runs in rows.items():
        b = {"system": label, "handler": handler, "rounds": runs}
        for key in ("drain_per_s", "with_startup_per_s"):
            b[key] = max(r[key] for r in runs)
        for key in ("p50_ms", "p99_ms", "idle_rss_mib", "startup_s"):
            vals = [r[key] for r in runs if key in r]
            if vals:
                b[key] = min(vals)
        best.append(b)
    return best


def scale(args: argparse.Namespace, run: Run, workdir: Path, urls: list[str], label: str) -> list[dict[str, Any]]:
    """``jobq run --processes N`` draining ``len(urls)``-spread queues; Redis CPU per job."""
    import redis

    clients = [redis.Redis.from_url(u) for u in urls]
    out = []
    for n in args.scale:
        sys_ = JobqRun(Run(run.redis_url, run.tag, workdir, run.concurrency), "noop", processes=n)
        try:
            cpu0 = [redis_cpu(c) for c in clients]
            d = drain(sys_, workdir, args.jobs * max(n, 1))
            used = sum(redis_cpu(c) for c in clients) - sum(cpu0)
            row = {"setup": label, "processes": n, "drain_per_s": d["drain_per_s"],
                   "redis_cpu_us_per_job": used / (args.jobs * max(n, 1)) * 1e6}
            out.append(row)
            print(f"  {label}: {n} processes  drain {row['drain_per_s']:8,.0f}/s  Redis CPU "
                  f"{row['redis_cpu_us_per_job']:.1f} µs/job", file=sys.stderr, flush=True)
        finally:
            sys_.close()
    for c in clients:
        c.close()
    return out


def start_cluster(workdir: Path) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    ports = []
    while len(ports) < 3:
        p = _free_port()
        if p < 55000 and p not in ports:
            ports.append(p)
    procs = []
    for p in ports:
        d = workdir / f"cluster-{p}"
        d.mkdir()
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(p), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", str(d / "nodes.conf"), "--dir", str(d), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL))
    time.sleep(0.5)  # by hand, not a test: let the nodes bind before redis-cli connects
    subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports], "--cluster-replicas",
                    "0", "--cluster-yes"], check=True, capture_output=True, timeout=60)
    import redis

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all(b"cluster_state:ok" in redis.Redis(port=p).execute_command("CLUSTER", "INFO") for p in ports):
            break
        time.sleep(0.1)
    return procs, ports


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=600)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--handlers", default="noop,incr")
    ap.add_argument("--scale", default="", help="comma-separated process counts, e.g. 1,2,4 (skips the comparison)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    args.handlers = [h for h in args.handlers.split(",") if h]
    args.scale = [int(x) for x in args.scale.split(",") if x]
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    tag = f"jbr-{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix="jobq-run-bench-"))
    run = Run(url, tag, workdir, args.concurrency)
    result: dict[str, Any] = {"load_before": os.getloadavg(), "jobs": args.jobs, "concurrency": args.concurrency}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        if args.scale:
            result["scale_one_redis"] = scale(args, run, workdir, [url], "one Redis")
        else:
            result["compare"] = compare(args, run, workdir)
    finally:
        cb.delete_tagged(run.redis, tag)
        for p in procs:
            p.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    result["load_after"] = os.getloadavg()
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for r in result.get("compare", []):
        extra = f"  p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms" if "p50_ms" in r else ""
        print(f"{r['handler']:5s} {r['system']:16s} drain {r['drain_per_s']:8,.0f}/s  with start-up "
              f"{r['with_startup_per_s']:8,.0f}/s{extra}")
    by = {(r["system"], r["handler"]): r for r in result.get("compare", [])}
    for h in args.handlers:
        a, b = by.get(("jobq run", h)), by.get(("BullMQ (Node)", h))
        if a and b:
            print(f"{h}: jobq run / BullMQ = {a['drain_per_s'] / b['drain_per_s']:.2f}x")
    for r in result.get("scale_one_redis", []):
        print(f"one Redis, {r['processes']} processes: {r['drain_per_s']:,.0f}/s, Redis CPU "
              f"{r['redis_cpu_us_per_job']:.1f} µs/job")
    print(f"load average before {result['load_before'][0]:.1f}, after {result['load_after'][0]:.1f}")
    _ = statistics


if __name__ == "__main__":
    main()
