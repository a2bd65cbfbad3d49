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
  loaded with its hooks, the metrics plugin on and ``/metrics`` served, serving the bench queue
  (``--queue``: the screenshot and replay queues would start 8 handler processes of their own);
* ``engine``: ``Worker([spec])`` alone (``peers/jobq_worker.py``), no plugin host;
* ``BullMQ``: one Node ``Worker`` (``peers/bullmq/worker.mjs``).

Handlers: ``noop`` reads its data and returns; ``incr`` also does one Redis ``INCR`` (jobq through
``job.redis``, BullMQ through an ioredis client). Latency: 600 jobs at 300/s to an idle worker,
enqueue→start as core_bench.py measures it. Rounds interleave the systems; each figure keeps its best.

``--scale``: ``jobq run --processes N`` for each N, three queues, on a private redis-server the
benchmark starts (so ``INFO cpu`` counts this benchmark's commands alone), reading Redis's CPU time
over the drain to give Redis µs per job; ``--cluster`` repeats it on a private 3-master Redis
Cluster on loopback with the three queues' slots on three different masters. Every key of a run
carries a unique tag and is deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
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
        # tracing is off unless jobq[otel] is installed; the repository's environment has it (tests)
        return {**super().worker_env(), "BENCH_HANDLER": self.handler, "OTEL_SDK_DISABLED": "true"}


class JobqRun(Engine):
    key = "jobq-run"
    label = "jobq run"
    queues = 1

    def __init__(self, run: Run, handler: str, processes: int = 1) -> None:
        super().__init__(run, handler)
        self.processes = processes

    def worker_command(self) -> list[str]:
        cmd = [sys.executable, str(PEERS / "jobq_run_app.py"), "--log-level", "WARNING", "run", "--queue", self.name,
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


def drain(system: Any, workdir: Path, n: int) -> dict[str, Any]:
    """Bulk-enqueue ``n`` jobs, then time one worker (or supervisor) draining them."""
    system.enqueue_bulk(n, 1000)
    before = system.enqueued - n
    out = cb.time_drain(system, workdir / f"{system.key}.log", lambda: system.enqueued - before - system.pending(), n,
                        rss_after=False)
    out["with_startup_per_s"] = n / (out["startup_s"] + out["drain_s"])
    return out


def compare(args: argparse.Namespace, run: Run, workdir: Path) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rnd in range(args.rounds):
        for handler in args.handlers:
            for make in (JobqRun, Engine, BullmqH):
                # a queue of its own for every measurement (the tag stays a prefix of the run's)
                system = make(Run(run.redis_url, f"{run.tag}-{rnd}{handler}", run.workdir, run.concurrency), handler)
                try:
                    res = {"system": system.label, "handler": handler, "round": rnd}
                    t0 = time.monotonic()
                    d = drain(system, workdir, args.jobs)
                    res.update(drain_per_s=d["drain_per_s"], with_startup_per_s=d["with_startup_per_s"],
                               startup_s=d["startup_s"])
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


class Fleet:
    """``jobq run --processes N`` serving ``len(urls)`` no-op queues whose slots are spread across masters."""

    key = "fleet"

    def __init__(self, url: str, tag: str, queues: int, processes: int, concurrency: int) -> None:
        import jobq
        from redis.crc import key_slot

        self.url, self.processes, self.concurrency = url, processes, concurrency
        self.prefix = f"{tag}-jobq"
        self.names = []
        for i in range(queues):  # queue i in the i-th third of the slots: one per master of a 3-master cluster
            j = 0
            while key_slot(f"{tag}-q{i}-{j}".encode()) * queues // 16384 != i:
                j += 1
            self.names.append(f"{tag}-q{i}-{j}")
        self.settings = jobq.Settings.from_env(redis_url=url, prefix=self.prefix)
        self.manager = jobq.QueueManager(self.settings, [jobq.QueueSpec(name=n, handler=print) for n in self.names])

    def worker_command(self) -> list[str]:
        cmd = [sys.executable, str(PEERS / "jobq_run_app.py"), "--log-level", "WARNING", "run",
               "--processes", str(self.processes)]
        for n in self.names:
            cmd += ["--queue", n]
        return cmd

    def worker_env(self) -> dict[str, str]:
        return {"BENCH_REDIS_URL": self.url, "BENCH_PREFIX": self.prefix, "BENCH_QUEUE": ",".join(self.names),
                "BENCH_CONCURRENCY": str(self.concurrency), "PYTHONPATH": str(PEERS), "REDIS_URL": self.url,
                "JOBQ_PREFIX": self.prefix, "OTEL_SDK_DISABLED": "true"}

    def fill(self, n: int) -> int:
        """Spread about ``n`` jobs evenly over the queues; returns how many were added."""
        per = n // len(self.names)
        for name in self.names:
            for i in range(0, per, 1000):
                self.manager.add_jobs(name, [(None, {}) for _ in range(min(1000, per - i))])
        return per * len(self.names)

    def completed(self) -> int:
        return sum(self.manager.get_queue_metrics(n)["completed"] for n in self.names)


def scale(args: argparse.Namespace, tag: str, workdir: Path, url: str, nodes: list[str], queues: int,
          label: str) -> list[dict[str, Any]]:
    """Drain on ``url`` with 1..N processes; Redis CPU per job summed over ``nodes``."""
    import redis

    clients = [redis.Redis.from_url(u) for u in nodes]
    out = []
    for n in args.scale:
        fleet = Fleet(url, f"{tag}-{label[:3]}{n}", queues, n, args.concurrency)
        jobs = fleet.fill(args.jobs * n)
        cpu0 = sum(redis_cpu(c) for c in clients)
        d = cb.time_drain(fleet, workdir / "fleet.log", fleet.completed, jobs, rss_after=False)  # type: ignore[arg-type]
        used = sum(redis_cpu(c) for c in clients) - cpu0
        row = {"setup": label, "queues": queues, "processes": n, "jobs": jobs, "drain_per_s": d["drain_per_s"],
               "redis_cpu_us_per_job": used / jobs * 1e6}
        out.append(row)
        fleet.manager.close()
        print(f"  {label}: {n} processes  drain {row['drain_per_s']:8,.0f}/s  Redis CPU "
              f"{row['redis_cpu_us_per_job']:.1f} µs/job", file=sys.stderr, flush=True)
    for c in clients:
        c.close()
    return out


def start_redis(workdir: Path) -> tuple[list[subprocess.Popen[bytes]], int]:
    """A private standalone redis-server on loopback, no persistence."""
    port = _free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)], stdout=subprocess.DEVNULL)
    cb.wait_until(lambda: _pings(port), 20, "redis-server")
    return [proc], port


def start_cluster(workdir: Path) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    """Three empty masters on loopback, slots split evenly (as core/tests/test_cluster.py starts one)."""
    import redis

    ports: list[int] = []
    while len(ports) < 3:
        p = _free_port()
        if p < 55000 and p not in ports:  # the cluster bus listens on port + 10000
            ports.append(p)
    procs = []
    for p in ports:
        d = workdir / f"cluster-{p}"
        d.mkdir()
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(p), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", str(d / "nodes.conf"), "--dir", str(d), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL))
    cb.wait_until(lambda: all(_pings(p) for p in ports), 20, "cluster nodes")
    subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports], "--cluster-replicas",
                    "0", "--cluster-yes"], check=True, capture_output=True, timeout=60)
    cb.wait_until(lambda: all(b"cluster_state:ok" in redis.Redis(port=p).execute_command("CLUSTER", "INFO")
                              for p in ports), 30, "cluster_state:ok")
    return procs, ports


def _pings(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(port=port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=600)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--handlers", default="noop,incr")
    ap.add_argument("--scale", default="", help="comma-separated process counts, e.g. 1,2,4 (skips the comparison)")
    ap.add_argument("--cluster", action="store_true", help="with --scale: also on a 3-master Redis Cluster")
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
            # a Redis of its own: INFO's CPU time is then this benchmark's alone, not the shared server's
            procs, port = start_redis(workdir)
            own = f"redis://127.0.0.1:{port}/0"
            result["scale"] = scale(args, tag, workdir, own, [own], 3, "one Redis")
            if args.cluster:
                cluster_procs, ports = start_cluster(workdir)
                procs += cluster_procs
                result["scale"] += scale(args, tag, workdir, f"redis+cluster://127.0.0.1:{ports[0]}",
                                         [f"redis://127.0.0.1:{p}" for p in ports], 3, "3-master cluster")
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
    for r in result.get("scale", []):
        print(f"{r['setup']}, {r['queues']} queues, {r['processes']} processes: {r['drain_per_s']:,.0f} jobs/s, "
              f"Redis CPU {r['redis_cpu_us_per_job']:.1f} µs/job")
    print(f"load average before {result['load_before'][0]:.1f}, after {result['load_after'][0]:.1f}")


if __name__ == "__main__":
    main()
