"""Flow control benchmark: fairness between groups, the cost of groups, rate-limit accuracy.

Run by hand from the repository's environment (workers are OS processes this script starts):

    .venv/bin/python bench/fairness_bench.py [--flood 20000] [--rate-seconds 60] [--json]

Prints:

* trickle wait p50/p99: a flood of ``--flood`` jobs of one group drains on ``--workers`` worker
  processes while a trickle group adds a job every 50 ms; wait = claim time - enqueue time, both
  Redis clock (the job hash's ``created`` and ``started``). The same run without groups shows what
  the trickle suffers otherwise;
* grouped vs ungrouped drain: ``--drain`` no-op jobs drained by one worker process, ungrouped and
  spread over 100 groups, timed from the first finished job to the last, best of ``--rounds``
  interleaved rounds;
* measured vs configured rate: ``--rate-workers`` processes drain a queue limited to
  ``--rate``/s for ``--rate-seconds``; the measured rate counts starts over that span, and the
  busiest rolling window of the limit's length is checked against the limit;
* Redis cost per job (``--skip cost`` leaves it out): 20,000 jobs claimed and acknowledged through
  ``fetch.lua`` directly (no worker) on a private ``redis-server`` this script starts, ungrouped
  and over 100 groups: commands run per job (exact) and Redis CPU per job (``INFO cpu``; less
  sensitive than wall time to other load on the machine).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import redis
from jobq import QueueManager, QueueSpec, Settings
from jobq.keys import QueueKeys, delete_prefix, workers_key

POLL = 0.003


async def noop(job: Any) -> None:
    return None


def worker_main() -> None:
    """``fairness_bench.py --worker QUEUE CONCURRENCY [max/seconds]``: one worker process."""
    from jobq.worker import Worker

    queue, conc = sys.argv[2], int(sys.argv[3])
    rate = sys.argv[4] if len(sys.argv) > 4 else ""
    limit = (int(rate.split("/")[0]), float(rate.split("/")[1])) if rate else None
    settings = Settings.from_env(redis_url=os.environ["BENCH_REDIS_URL"], prefix=os.environ["BENCH_PREFIX"])
    Worker([QueueSpec(name=queue, handler=noop, concurrency=conc, rate_limit=limit)], settings).run_forever()


class Bench:
    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.prefix = f"fairbench-{uuid.uuid4().hex[:8]}"
        self.settings = Settings.from_env(redis_url=redis_url, prefix=self.prefix, events_maxlen=0)
        self.client = redis.Redis.from_url(redis_url)
        self.procs: list[subprocess.Popen[bytes]] = []

    def manager(self, queue: str) -> QueueManager:
        return QueueManager(self.settings, [QueueSpec(name=queue, handler=noop)])

    def spawn(self, queue: str, n: int, concurrency: int, rate: str = "") -> list[subprocess.Popen[bytes]]:
        env = {**os.environ, "BENCH_REDIS_URL": self.redis_url, "BENCH_PREFIX": self.prefix}
        new = [subprocess.Popen([sys.executable, __file__, "--worker", queue, str(concurrency), rate], env=env,
                                start_new_session=True) for _ in range(n)]
        self.procs += new
        pids = {str(p.pid) for p in new}
        deadline = time.monotonic() + 60
        while not all(any(f"-{pid}-" in w.decode() for w in self.client.zrange(workers_key(self.prefix), 0, -1))
                      for pid in pids):
            if time.monotonic() > deadline:
                raise TimeoutError("workers did not start")
            time.sleep(0.02)
        return new

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        self.procs = []

    def completed(self, queue: str) -> int:
        return int(self.client.zcard(QueueKeys(self.prefix, queue).completed))

    def close(self) -> None:
        self.stop()
        delete_prefix(self.client, self.prefix)
        self.client.close()

    # -- 1: trickle during a flood ----------------------------------------------------------
    def trickle(self, flood: int, workers: int, concurrency: int, grouped: bool) -> dict[str, Any]:
        queue = f"trickle-{'g' if grouped else 'u'}"
        m = self.manager(queue)
        g = {"group": "flood"} if grouped else {}
        for i in range(0, flood, 1000):
            m.add_jobs(queue, [(None, {}, g) for _ in range(min(1000, flood - i))])
        self.spawn(queue, workers, concurrency)
        ids: list[str] = []
        t0 = time.monotonic()
        while self.completed(queue) < flood:  # trickle jobs that finished count too: stops a little early
            ids.append(m.add_job(queue, None, {}, **({"group": "trickle"} if grouped else {})).id)
            time.sleep(0.05)
            if time.monotonic() - t0 > 600:
                raise TimeoutError("flood did not drain")
        drain_s = time.monotonic() - t0
        deadline = time.monotonic() + 120
        while self.completed(queue) < flood + len(ids) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.stop()
        waits = sorted(j.started_at - j.created_at for j in (m.get_job(queue, i) for i in ids) if j and j.started_at)
        q = statistics.quantiles(waits, n=100)
        m.shutdown()
        return {"grouped": grouped, "flood_jobs": flood, "trickle_jobs": len(waits), "flood_drain_s": drain_s,
                "trickle_wait_p50_s": q[49], "trickle_wait_p99_s": q[98], "trickle_wait_max_s": waits[-1]}

    # -- 2: grouped vs ungrouped drain --------------------------------------------------------
    def drain(self, n: int, concurrency: int, groups: int) -> float:
        queue = f"drain-{uuid.uuid4().hex[:6]}"
        m = self.manager(queue)
        for i in range(0, n, 1000):
            m.add_jobs(queue, [(None, {}, {"group": f"g{(i + j) % groups}"} if groups else {})
                               for j in range(min(1000, n - i))])
        self.spawn(queue, 1, concurrency)
        first = t_first = 0.0
        while True:
            done = self.completed(queue)
            now = time.perf_counter()
            if done and not first:
                first, t_first = done, now
            if done >= n:
                break
            time.sleep(POLL)
        self.stop()
        m.shutdown()
        delete_prefix(self.client, f"{self.prefix}:{{{queue}}}")
        return (n - first) / (now - t_first)

    # -- 3: rate accuracy ---------------------------------------------------------------------
    def rate(self, per_s: int, window: float, seconds: float, workers: int) -> dict[str, Any]:
        queue = "rated"
        mx = max(1, round(per_s * window))
        m = self.manager(queue)
        n = int(per_s * seconds * 1.3) + 100  # more than the limit lets through: the queue never runs dry
        for i in range(0, n, 1000):
            m.add_jobs(queue, [(None, {}) for _ in range(min(1000, n - i))])
        self.spawn(queue, workers, 50, f"{mx}/{window}")
        k = QueueKeys(self.prefix, queue)
        t_end = time.monotonic() + seconds + 1.5
        while time.monotonic() < t_end:
            time.sleep(0.1)
        self.stop()
        ids = [i.decode() for i in self.client.zrange(k.completed, 0, -1)]
        pipe = self.client.pipeline(transaction=False)
        for i in ids:
            pipe.hget(k.job(i), "started")
        starts = sorted(int(x) for x in pipe.execute() if x)
        t0 = starts[0]
        win_ms = int(window * 1000)
        in_span = [s for s in starts if s < t0 + seconds * 1000]
        busiest, j = 0, 0
        for i, s in enumerate(starts):  # the most starts in any rolling window of the limit's length
            while starts[j] <= s - win_ms:
                j += 1
            busiest = max(busiest, i - j + 1)
        m.shutdown()
        measured = len(in_span) / seconds
        return {"configured_per_s": mx / window, "limit": f"{mx}/{window}s", "workers": workers,
                "seconds": seconds, "measured_per_s": measured, "error_pct": (measured / (mx / window) - 1) * 100,
                "busiest_window_starts": busiest, "limit_max": mx}


def redis_cost(rounds: int) -> dict[str, Any]:
    """Commands and Redis CPU per job of claim + ack, on a private redis-server (nothing else runs there)."""
    import socket

    from jobq.scripts import Scripts

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

        def cpu() -> float:
            info = client.info("cpu")
            return info["used_cpu_user"] + info["used_cpu_sys"]

        def calls() -> int:
            return sum(v["calls"] for v in client.info("commandstats").values())

        def one(groups: int, n: int = 20_000) -> tuple[float, float]:
            settings = Settings.from_env(redis_url=url, prefix="cost", events_maxlen=1000)
            m = QueueManager(settings, [QueueSpec(name="q", handler=noop)])
            for i in range(0, n, 1000):
                m.add_jobs("q", [(None, {}, {"group": f"g{(i + j) % groups}"} if groups else {})
                                 for j in range(1000)])
            k, scripts, acks = m.keys("q"), Scripts(client), []
            c0, n0 = cpu(), calls()
            while True:
                args: list[Any] = [k.job_prefix, 30_000, 128, os.urandom(4).hex() + ":", 1000, -1, -1, "w",
                                   len(acks)]
                for job_id, token in acks:
                    args += [job_id, token, "null", 0]
                reply = scripts.fetch(keys=k.fetch_keys() + [k.job(a[0]) for a in acks], args=args)
                claimed = reply[2]
                acks = [(claimed[i].decode(), claimed[i + 1].decode()) for i in range(0, len(claimed), 9)]
                if not acks:
                    break
            c1, n1 = cpu(), calls()
            m.shutdown()
            client.flushall()
            return (c1 - c0) / n * 1e6, (n1 - n0) / n

        runs = [(one(0), one(100)) for _ in range(rounds)]
    finally:
        client.close()
        server.terminate()
        server.wait(10)
    return {"ungrouped_cmds_per_job": runs[0][0][1], "grouped_cmds_per_job": runs[0][1][1],
            "ungrouped_cpu_us_per_job": min(r[0][0] for r in runs),
            "grouped_cpu_us_per_job": min(r[1][0] for r in runs)}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main()
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    ap.add_argument("--flood", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--drain", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=int, default=200, help="configured starts per second")
    ap.add_argument("--rate-window", type=float, default=1.0)
    ap.add_argument("--rate-seconds", type=float, default=20.0)
    ap.add_argument("--rate-workers", type=int, default=4)
    ap.add_argument("--skip", default="", help="comma list of trickle,drain,rate,cost")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    b = Bench(args.redis_url)
    out: dict[str, Any] = {}
    try:
        if "trickle" not in skip:
            out["trickle"] = [b.trickle(args.flood, args.workers, args.concurrency, grouped=g) for g in (True, False)]
        if "drain" not in skip:
            rounds: dict[str, list[float]] = {"ungrouped": [], "grouped_100": []}
            for _ in range(args.rounds):
                rounds["ungrouped"].append(b.drain(args.drain, 256, 0))
                rounds["grouped_100"].append(b.drain(args.drain, 256, 100))
            best = {k: max(v) for k, v in rounds.items()}
            out["drain"] = {"jobs": args.drain, "rounds": rounds, "best": best,
                            "grouped_vs_ungrouped": best["grouped_100"] / best["ungrouped"]}
        if "rate" not in skip:
            out["rate"] = b.rate(args.rate, args.rate_window, args.rate_seconds, args.rate_workers)
        if "cost" not in skip:
            out["cost"] = redis_cost(args.rounds)
    finally:
        b.close()
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for t in out.get("trickle", []):
        kind = "grouped" if t["grouped"] else "no groups"
        print(f"trickle wait ({kind}): p50 {t['trickle_wait_p50_s'] * 1000:.1f} ms,"
              f" p99 {t['trickle_wait_p99_s'] * 1000:.1f} ms, max {t['trickle_wait_max_s'] * 1000:.1f} ms "
              f"({t['trickle_jobs']} trickle jobs during a {t['flood_jobs']:,}-job flood drained in "
              f"{t['flood_drain_s']:.1f} s by {args.workers}x{args.concurrency})")
    if "drain" in out:
        d = out["drain"]
        print(f"drain, 1 worker x256: ungrouped {d['best']['ungrouped']:,.0f} jobs/s, 100 groups "
              f"{d['best']['grouped_100']:,.0f} jobs/s ({d['grouped_vs_ungrouped'] * 100:.0f} %), best of "
              f"{args.rounds}")
    if "rate" in out:
        r = out["rate"]
        print(f"rate {r['limit']} with {r['workers']} workers over {r['seconds']:g} s: measured "
              f"{r['measured_per_s']:.2f}/s vs {r['configured_per_s']:.2f}/s ({r['error_pct']:+.2f} %); busiest "
              f"rolling window {r['busiest_window_starts']} starts (limit {r['limit_max']})")
    if "cost" in out:
        c = out["cost"]
        print(f"Redis per job (claim + ack through fetch.lua): ungrouped {c['ungrouped_cmds_per_job']:.1f} "
              f"commands, {c['ungrouped_cpu_us_per_job']:.1f} us CPU; 100 groups {c['grouped_cmds_per_job']:.1f} "
              f"commands, {c['grouped_cpu_us_per_job']:.1f} us CPU (best of {args.rounds})")


if __name__ == "__main__":
    main()
