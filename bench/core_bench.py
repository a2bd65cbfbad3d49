"""jobq's core benchmark: jobq against peer job queues, measured in one run on the same Redis.

Run by hand (builds bench/.venv with jobq, arq, RQ, Dramatiq, Celery, and BullMQ's Node packages):

    bench/setup.sh && bench/.venv/bin/python bench/core_bench.py [--json] [--million]

For every system, with its worker in a process of its own and the producer in this process (BullMQ's
producer is a Node process the script starts for each step and which times itself):

* enqueue jobs/s, single: no-op jobs added with one API call each, no worker running;
* enqueue jobs/s, bulk: the same through the system's bulk API, batches of 1,000;
* drain jobs/s: the jobs just added (20,000) are drained by one freshly started worker process,
  timed from the first finished job to the last (worker start-up excluded; polled every 3 ms);
* enqueue→start latency p50/p99: 600 jobs at a steady 300/s to an idle worker; each job carries
  the producer's ``time.monotonic()`` read just before the enqueue call, the handler subtracts it
  from its own reading at entry (CLOCK_MONOTONIC is one clock for every process on Linux);
* idle RSS: VmRSS of the worker process and its children, 2 s after it handled a warm-up job.

``--million`` adds jobq's flatness check: the drain rate of spans of 20,000 jobs with 1,000,000
waiting, against drains of 20,000 from an empty queue (interleaved). Every key, queue name and job
id of a run carries a unique tag; keys with it are deleted afterwards (SCAN + UNLINK).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
from systems import SYSTEMS, Jobq, Run, System

AIMS = {"drain_per_s": 10_000, "bulk_per_s": 50_000, "p50_ms": 0.5, "idle_rss_mib": 30.0}
POLL = 0.003


# -- processes ------------------------------------------------------------------------------


def start_worker(system: System, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **system.worker_env()}
    with open(log, "ab") as out:
        return subprocess.Popen(system.worker_command(), env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop_worker(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM (each system's graceful stop), then SIGKILL the process group this script started."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(5)


def tree_rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` and its descendants (shared pages of forked children count in each)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, ()))
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def wait_until(cond: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None,
               log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise RuntimeError(f"worker exited ({proc.returncode}) while waiting for {what}:\n{tail}")
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}\n{tail}")
        time.sleep(POLL)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


# -- measurements ---------------------------------------------------------------------------


def measure_idle_and_latency(system: System, log: Path, samples: int, rate: float, idle: float) -> dict[str, Any]:
    warm = 5
    proc = start_worker(system, log)
    try:
        system.send_paced(warm, 50)
        wait_until(lambda: len(lines(system.lat_file)) >= warm, 90, "warm-up jobs", proc, log)
        time.sleep(idle)  # let the worker settle into its idle wait
        rss = tree_rss_kib(proc.pid)
        system.send_paced(samples, rate)
        wait_until(lambda: len(lines(system.lat_file)) >= warm + samples, 120, "latency jobs", proc, log)
        wait_until(lambda: system.pending() == 0, 30, "latency jobs to finish", proc, log)
    finally:
        stop_worker(proc)
    lat = sorted(float(x) * 1000 for x in lines(system.lat_file)[warm:warm + samples])
    q = statistics.quantiles(lat, n=100)
    return {"idle_rss_mib": rss / 1024, "p50_ms": q[49], "p90_ms": q[89], "p99_ms": q[98], "max_ms": lat[-1],
            "latency_samples": samples, "latency_rate_per_s": rate}


def measure_enqueue(system: System, single: int, bulk: int) -> dict[str, Any]:
    out: dict[str, Any] = {"single_jobs": single, "single_per_s": single / system.enqueue_single(single)}
    if system.bulk_method:
        out["bulk_jobs"] = bulk
        out["bulk_per_s"] = bulk / system.enqueue_bulk(bulk, 1000)
    else:
        out["bulk_per_s"] = None
        system.enqueue_single(bulk)  # the drain set still needs them
    return out


def time_drain(system: System, log: Path, done: Callable[[], int], target: int, *,
               rss_after: bool = True) -> dict[str, Any]:
    """Start a worker on a filled queue; time from the first finished job until ``done() >= target``."""
    t_spawn = time.monotonic()
    proc = start_worker(system, log)
    try:
        first, t_first = 0, 0.0
        deadline = t_spawn + 900
        while True:
            n = done()
            now = time.monotonic()
            if n > 0 and not first:
                first, t_first = n, now
            if n >= target:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited ({proc.returncode}) during the drain:\n"
                                   f"{log.read_text(errors='replace')[-3000:]}")
            if now > deadline:
                raise TimeoutError(f"drain not finished after 900 s ({n}/{target})")
            time.sleep(POLL)
        if n == first:  # everything finished between two polls: fall back to timing from the spawn
            first, t_first = 0, t_spawn
        out: dict[str, Any] = {"drain_jobs": target, "drain_per_s": (n - first) / (now - t_first),
                               "drain_s": now - t_first, "startup_s": t_first - t_spawn}
        if rss_after:
            time.sleep(1.0)
            out["rss_after_drain_mib"] = tree_rss_kib(proc.pid) / 1024
    finally:
        stop_worker(proc)
    return out


def measure_system(system: System, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    log = workdir / f"{system.key}.log"
    res: dict[str, Any] = {"system": system.key, "label": system.label, "settings": system.describe(),
                           "bulk_method": system.bulk_method}
    res.update(measure_idle_and_latency(system, log, args.samples, args.rate, args.idle))
    n = min(system.drain_jobs or args.jobs, args.jobs)
    single = min(args.single, n // 4)
    res.update(measure_enqueue(system, single, n - single))
    before = system.enqueued - n  # everything sent before this drain set has finished
    res.update(time_drain(system, log, lambda: system.enqueued - before - system.pending(), n))
    return res


def best_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's best over the rounds (highest rate, lowest latency and RSS); all rounds kept."""
    if len(runs) == 1:
        return runs[0]
    out = dict(runs[0])
    for key, _h, _f, higher in COLUMNS:
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            out[key] = max(values) if higher else min(values)
    out["rounds"] = runs
    return out


def measure_million(run: Run, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """jobq only: is the per-job cost flat with 10^6 jobs waiting?"""
    r = run.redis
    mem = r.info("memory")
    mem_before = int(mem["used_memory"])
    need = 600 * 1_000_000  # bytes, generous: a waiting no-op job takes ~300 B in Redis
    if mem.get("maxmemory") and mem_before + need > int(mem["maxmemory"]):
        raise RuntimeError(f"Redis maxmemory {mem['maxmemory_human']} leaves no room for 10^6 jobs "
                           f"(used {mem['used_memory_human']})")
    print(f"    Redis memory before: {mem['used_memory_human']}", file=sys.stderr, flush=True)
    log = workdir / "jobq-million.log"
    n, total, repeats = args.jobs, 1_000_000, 3
    big_tag = f"{run.tag}-mbig"
    baseline: list[float] = []
    loaded: list[float] = []

    def empty_queue_drain(i: int) -> None:
        tag = f"{run.tag}-m{i}"
        base = Jobq(Run(run.redis_url, tag, workdir, run.concurrency))
        try:
            base.enqueue_bulk(n, 1000)
            baseline.append(time_drain(base, log, base.completed, n, rss_after=False)["drain_per_s"])
        finally:
            base.close()
            delete_tagged(r, tag)

    # Empty-queue drains interleave with spans of the big queue, so load that comes and goes on a
    # shared machine falls on both sides alike.
    try:
        empty_queue_drain(0)
        big = Jobq(Run(run.redis_url, big_tag, workdir, run.concurrency))
        try:
            t0 = time.perf_counter()
            big.enqueue_bulk(total, 1000)
            bulk_s = time.perf_counter() - t0
            mem_full = int(r.info("memory")["used_memory"])
            for i in range(repeats):
                empty_queue_drain(i + 1)
                offset = big.completed()
                span = time_drain(big, log, lambda o=offset: big.completed() - o, n, rss_after=False)
                loaded.append(span["drain_per_s"])
        finally:
            big.close()
    finally:
        deleted = delete_tagged(r, big_tag)
    empty, full = statistics.median(baseline), statistics.median(loaded)
    return {
        "waiting": total, "window_jobs": n,
        "baseline_drain_per_s": empty, "baseline_runs_per_s": baseline,
        "loaded_drain_per_s": full, "loaded_windows_per_s": loaded, "ratio_loaded_to_baseline": full / empty,
        "bulk_enqueue_1m_per_s": total / bulk_s, "redis_mib_for_1m_jobs": (mem_full - mem_before) / 2**20,
        "keys_deleted": deleted,
    }


def delete_tagged(r: Any, tag: str) -> int:
    """Delete every key whose name contains this run's tag (only this run creates such names)."""
    n = 0
    batch: list[bytes] = []
    for key in r.scan_iter(match=f"*{tag}*", count=5000):
        batch.append(key)
        if len(batch) >= 2000:
            n += r.unlink(*batch)
            batch = []
    if batch:
        n += r.unlink(*batch)
    return n


# -- report ---------------------------------------------------------------------------------

COLUMNS = [  # key, header, format, higher is better
    ("single_per_s", "enqueue/s single", "{:,.0f}", True),
    ("bulk_per_s", "enqueue/s bulk", "{:,.0f}", True),
    ("drain_per_s", "drain jobs/s", "{:,.0f}", True),
    ("p50_ms", "latency p50 ms", "{:.2f}", False),
    ("p99_ms", "latency p99 ms", "{:.2f}", False),
    ("idle_rss_mib", "idle RSS MiB", "{:.1f}", False),
]


def advantage(jobq: float | None, peer: float | None, higher_better: bool) -> float | None:
    """How many times better jobq is than the peer (> 1: jobq ahead)."""
    if not jobq or not peer:
        return None
    return jobq / peer if higher_better else peer / jobq


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for j, r in enumerate(rows):
        out.append("| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                                     enumerate(zip(r, widths, strict=True))) + " |")
        if j == 0:
            out.append("|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in
                                      enumerate(widths)) + "|")
    return "\n".join(out)


def report(results: list[dict[str, Any]], million: dict[str, Any] | None) -> str:
    head = ["system", *(c[1] for c in COLUMNS)]
    figures = [head]
    for r in results:
        cells = [r["label"]]
        for key, _h, fmt, _hb in COLUMNS:
            v = r.get(key)
            cells.append("n/a" if v is None else fmt.format(v))
        figures.append(cells)
    parts = ["Figures", table(figures)]
    jobq = next((r for r in results if r["system"] == "jobq"), None)
    peers = [r for r in results if r is not jobq]
    if jobq and peers:
        ratios = [head]
        for r in peers:
            cells = [r["label"]]
            for key, _h, _f, hb in COLUMNS:
                a = advantage(jobq.get(key), r.get(key), hb)
                cells.append("n/a" if a is None else f"{a:.2f}x")
            ratios.append(cells)
        parts += ["", "jobq's advantage (jobq/peer for rates, peer/jobq for latency and RSS; > 1 = jobq ahead)",
                  table(ratios)]
    if jobq:
        parts += ["", "Aims (jobq)"]
        for key, aim in AIMS.items():
            v = jobq.get(key)
            higher = key.endswith("per_s")
            ok = v is not None and (v >= aim if higher else v <= aim)
            verdict = "met" if ok else "MISSED"
            parts.append(f"  {key:14s} {v:>12,.2f}  aim {'>=' if higher else '<='} {aim:,}  {verdict}")
        for key, _h, _f, hb in COLUMNS:
            behind = [r["label"] for r in peers if (a := advantage(jobq.get(key), r.get(key), hb)) and a < 1]
            if behind:
                parts.append(f"  {key}: behind {', '.join(behind)}")
    slow = [r["label"] for r in results if r.get("drain_per_s", 0) < 1.2 * r["latency_rate_per_s"]]
    if slow:
        parts += ["", f"Drain rate under 1.2x the latency test's rate, so those latencies measure a backlog: "
                      f"{', '.join(slow)}"]
    if million:
        parts += ["", "Flat with 10^6 waiting (jobq)", *million_lines(million)]
    parts += ["", "Settings"] + [f"  {r['label']}: {r['settings']}" for r in results]
    sizes = ", ".join(f"{r['label']} {r['drain_jobs']:,}" for r in results)
    parts += [f"  drain timing: from the first finished job to the last (start-up excluded), polled every "
              f"{POLL * 1000:.0f} ms; drain sizes: {sizes}"]
    return "\n".join(parts)


def million_lines(m: dict[str, Any]) -> list[str]:
    def rates(xs: list[float]) -> str:
        return ", ".join(f"{x:,.0f}" for x in xs)

    return [
        f"  drain with {m['waiting']:,} waiting: {m['loaded_drain_per_s']:,.0f}/s (median of "
        f"{len(m['loaded_windows_per_s'])} spans of {m['window_jobs']:,}: {rates(m['loaded_windows_per_s'])})",
        f"  drain of {m['window_jobs']:,} from an empty queue: {m['baseline_drain_per_s']:,.0f}/s "
        f"(median of {rates(m['baseline_runs_per_s'])})",
        f"  ratio loaded/empty: {m['ratio_loaded_to_baseline']:.2f} (1.00 = flat)",
        f"  bulk enqueue of 1,000,000: {m['bulk_enqueue_1m_per_s']:,.0f}/s; "
        f"Redis memory for them: {m['redis_mib_for_1m_jobs']:,.0f} MiB",
    ]


def precompile() -> None:
    """Byte-compile jobq and the peer modules before any worker starts.

    Where PYTHONDONTWRITEBYTECODE is set, a module edited since its last .pyc is compiled from
    source at every start, which costs time and ~2 MiB of RSS that an installed package never pays.
    """
    import compileall

    import jobq

    for folder in (Path(jobq.__file__).parent, Path(__file__).resolve().parent / "peers"):
        compileall.compile_dir(str(folder), quiet=1)


def environment(redis_url: str) -> dict[str, Any]:
    import importlib.metadata as md

    import redis

    info = redis.Redis.from_url(redis_url).info("server")
    versions = {}
    for dist in ("jobq", "redis", "hiredis", "arq", "rq", "dramatiq", "celery", "kombu"):
        with contextlib.suppress(md.PackageNotFoundError):
            versions[dist] = md.version(dist)
    return {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(), "redis_server": info["redis_version"], "cpus": os.cpu_count(),
            "load_avg_at_start": os.getloadavg(), "versions": versions}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated, from {', '.join(SYSTEMS)}")
    p.add_argument("--jobs", type=int, default=20_000, help="drain set per system (default 20,000)")
    p.add_argument("--single", type=int, default=5_000, help="of which added one call each (default 5,000)")
    p.add_argument("--concurrency", type=int, default=100,
                   help="jobs at once in jobq, arq (max_jobs) and BullMQ workers (default 100)")
    p.add_argument("--samples", type=int, default=600, help="latency jobs (default 600)")
    p.add_argument("--rate", type=float, default=300.0, help="latency jobs per second (default 300)")
    p.add_argument("--idle", type=float, default=2.0, help="seconds idle before reading RSS (default 2)")
    p.add_argument("--rounds", type=int, default=1,
                   help="measure every system this many times, interleaved, and keep each figure's best "
                        "(discounts other load on a shared machine; default 1)")
    p.add_argument("--million", action="store_true", help="also jobq's drain with 10^6 jobs waiting")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--report", metavar="FILE", help="print the tables of a saved --json output and exit")
    args = p.parse_args()
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        print_report(saved["environment"], saved["results"], saved.get("million"), saved.get("errors") or {})
        return
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(names) - set(SYSTEMS)
    if unknown:
        p.error(f"unknown system(s) {', '.join(sorted(unknown))}")

    precompile()
    tag = f"jqbench-{uuid.uuid4().hex[:10]}"
    rounds: dict[str, list[dict[str, Any]]] = {}
    results: list[dict[str, Any]] = []
    million = None
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="jobq-core-bench-") as tmp:
        workdir = Path(tmp)
        run = Run(args.redis_url, tag, workdir, args.concurrency)
        env = environment(args.redis_url)
        try:
            for rnd in range(args.rounds):
                for name in names:
                    print(f"... {name}" + (f" (round {rnd + 1}/{args.rounds})" if args.rounds > 1 else ""),
                          file=sys.stderr, flush=True)
                    try:
                        system = SYSTEMS[name](run)
                    except Exception as exc:  # a peer that cannot start is reported, the others still run
                        errors[name] = f"{type(exc).__name__}: {exc}"
                        continue
                    try:
                        rounds.setdefault(name, []).append(measure_system(system, args, workdir))
                    except Exception as exc:
                        errors[name] = f"{type(exc).__name__}: {exc}"
                    finally:
                        system.close()
                        delete_tagged(run.redis, system.name)
            results = [best_of(rounds[n]) for n in names if n in rounds]
            if args.million:
                print("... jobq with 10^6 waiting", file=sys.stderr, flush=True)
                million = measure_million(run, args, workdir)
        finally:
            delete_tagged(run.redis, tag)
    if args.json:
        print(json.dumps({"environment": env, "results": results, "million": million, "errors": errors}, indent=2))
    else:
        print_report(env, results, million, errors)


def print_report(env: dict[str, Any], results: list[dict[str, Any]], million: dict[str, Any] | None,
                 errors: dict[str, str]) -> None:
    print(f"jobq core benchmark, {env['date']}, {env['cpus']} CPUs, Redis {env['redis_server']}, "
          f"Python {env['python']}, load average at start {env['load_avg_at_start'][0]:.2f}\n")
    print(report(results, million))
    for name, err in errors.items():
        print(f"\n{name} FAILED: {err}")


if __name__ == "__main__":
    main()
