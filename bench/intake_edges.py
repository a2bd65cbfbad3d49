"""Hostile clients against a real ``jobq api`` process: idle and slow sockets, descriptor exhaustion,
and huge replay bodies (issue 14, points 2 and 3).

    .venv/bin/python bench/intake_edges.py [--only sockets|fds|memory] [--mib 64] [--real] [--hold 15]

Prints, for each scenario, what a hostile client achieves:

- sockets: 20 slow-header, 20 idle and 20 slow-body sockets; how many the server still holds open
  after ``--hold`` s (15; the body deadline is 60 s), and the answer a legitimate request gets.
- fds: the API started with a 200-descriptor limit and 220 unauthenticated sockets: idle; idle
  with the attacker opening new ones in a loop; each having sent one byte of a request, without and
  with the attacker opening new ones in a loop. The answers
  and latency of legitimate requests for 10 s meanwhile (``GET /health``, a report with its key,
  one without, each on a new connection), and the bytes the API logged besides their own lines.
- memory: one, then three concurrent, ``--mib`` MiB bodies of ``{}`` replay events; the API's peak
  RSS (VmHWM), its RSS afterwards, the answers, and the slowest ``/health`` answer meanwhile;
  with ``--real``, also one body of real rrweb events of that size.

Uses its own Redis key prefix and a temporary SQLite store, removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from pathlib import Path

import httpx
import redis

KEY = "bench-key-0123456789abcdef"
CORPORA = Path("/work/shared/corpora")
JOBQ = str(Path(sys.executable).with_name("jobq"))


class Api:
    """``jobq api`` in a subprocess on a free port, its stderr collected."""

    def __init__(self, nofile: int | None = None, extra_env: dict[str, str] | None = None) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="jobq-bench-edges-"))
        self.prefix = f"jobqbench-{uuid.uuid4().hex[:8]}"
        env = {**os.environ, "JOBQ_API_KEYS": f"bench:{KEY}", "JOBQ_API_READ_KEYS": f"bench:r{KEY}",
               "DATABASE_URL": f"sqlite:///{self.tmp}/r.db", "JOBQ_PREFIX": self.prefix,
               "STORAGE_URL": str(self.tmp / "storage"), "JOBQ_API_MAX_BODY": str(200 * 1024 * 1024),
               "JOBQ_MAX_PAYLOAD_BYTES": str(400 * 1024 * 1024), "OTEL_SDK_DISABLED": "true",
               **(extra_env or {})}

        def limit() -> None:
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen([JOBQ, "api", "--port", "0"], env=env, stderr=subprocess.PIPE,
                                     preexec_fn=limit)
        self.log_bytes = 0
        self.report_log_bytes = 0  # the "report … created" lines of legitimate requests
        self.lines: list[str] = []
        started = threading.Event()

        def pump() -> None:
            assert self.proc.stderr is not None
            for raw in self.proc.stderr:
                self.log_bytes += len(raw)
                if b"jobq_bugreports.intake: report " in raw:
                    self.report_log_bytes += len(raw)
                if len(self.lines) < 200:
                    self.lines.append(raw.decode(errors="replace"))
                if not started.is_set() and (m := re.search(rb"running on http://127\.0\.0\.1:(\d+)", raw)):
                    self.port = int(m.group(1))
                    started.set()

        threading.Thread(target=pump, daemon=True).start()
        if not started.wait(30):
            raise SystemExit("jobq api did not start:\n" + "".join(self.lines))
        self.base = f"http://127.0.0.1:{self.port}"

    def status(self, field: str) -> int:
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) * 1024  # type: ignore[union-attr]

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        r = redis.Redis()
        for k in r.scan_iter(match=f"{self.prefix}:*", count=1000):
            r.delete(k)
        r.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def connect(api: Api) -> socket.socket:
    return socket.create_connection(("127.0.0.1", api.port), timeout=5)


def still_open(sock: socket.socket) -> bool:
    """True if the server has neither answered, closed nor reset the connection."""
    sock.setblocking(False)
    try:
        sock.recv(65536, socket.MSG_PEEK)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


def timed_get(api: Api, path: str = "/health", timeout: float = 30) -> tuple[float, str]:
    t0 = time.monotonic()
    try:
        r = httpx.get(api.base + path, timeout=timeout)
        outcome = str(r.status_code)
    except httpx.HTTPError as exc:
        outcome = type(exc).__name__
    return time.monotonic() - t0, outcome


def scenario_sockets(hold: float) -> None:
    api = Api()
    try:
        socks: dict[str, list[socket.socket]] = {"slow-header": [], "idle": [], "slow-body": []}
        for _ in range(20):
            s = connect(api)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            socks["slow-header"].append(s)
            socks["idle"].append(connect(api))
            s = connect(api)
            s.sendall(b"POST /api/v1/reports HTTP/1.1\r\nHost: x\r\nX-API-Key: " + KEY.encode()
                      + b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
            socks["slow-body"].append(s)
        t0 = time.monotonic()
        while time.monotonic() - t0 < hold:  # trickle a byte a second on the slow ones
            for s in socks["slow-header"]:
                with _quiet():
                    s.sendall(b"X")
            for s in socks["slow-body"]:
                with _quiet():
                    s.sendall(b" ")
            time.sleep(1)
        latency, outcome = timed_get(api)
        held = {name: sum(still_open(s) for s in group) for name, group in socks.items()}
        print(f"sockets: after {hold:.0f} s the server still holds {held} of 20 each; "
              f"a legitimate GET /health meanwhile: {outcome} in {latency * 1000:.0f} ms")
        for group in socks.values():
            for s in group:
                s.close()
    finally:
        api.close()


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], OSError)  # type: ignore[arg-type]


LEGIT = (("GET", "/health", None, "200"), ("POST", "/api/v1/reports", KEY, "201"),
         ("POST", "/api/v1/reports", None, "401"))


def legit_request(api: Api, i: int, timeout: float) -> tuple[float, str, str]:
    """The ``i``-th of a cycle of legitimate requests, each on a new connection: ``GET /health``, a
    report with its key, a report without one. Returns (seconds, outcome, the expected status)."""
    method, path, key, expected = LEGIT[i % len(LEGIT)]
    t0 = time.monotonic()
    try:
        r = httpx.request(method, api.base + path, timeout=timeout, headers={"X-API-Key": key} if key else None,
                          json={"title": "legit"} if method == "POST" else None)
        outcome = str(r.status_code)
    except httpx.HTTPError as exc:
        outcome = type(exc).__name__
    return time.monotonic() - t0, outcome, expected


class Attacker:
    """``n`` sockets that send ``first`` (nothing: idle) and no more; with ``reconnect``, a thread
    keeps opening new ones as fast as it can, closing its own oldest to stay at ``n``."""

    def __init__(self, api: Api, n: int, reconnect: bool = False, first: bytes = b"") -> None:
        self.api, self.n, self.first = api, n, first
        self.socks: deque[socket.socket] = deque()
        self.connects = 0
        for _ in range(n):
            if not self._open():
                break
        self.held = len(self.socks)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._churn, daemon=True)
        if reconnect:
            self.thread.start()

    def _open(self) -> bool:
        try:
            sock = socket.create_connection(("127.0.0.1", self.api.port), timeout=2)
            if self.first:
                sock.sendall(self.first)
        except OSError:
            return False
        self.socks.append(sock)
        self.connects += 1
        return True

    def _churn(self) -> None:
        while not self.stop.is_set():
            self._open()
            while len(self.socks) > self.n:
                self.socks.popleft().close()

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()
        for s in self.socks:
            s.close()


def scenario_fds(reconnect: bool = False, first: bytes = b"") -> None:
    api = Api(nofile=200)
    try:
        base_log = api.log_bytes - api.report_log_bytes
        attacker = Attacker(api, 220, reconnect, first)
        t0 = time.monotonic()
        results = []
        while time.monotonic() - t0 < 10:
            results.append(legit_request(api, len(results), timeout=12))
        logged = api.log_bytes - api.report_log_bytes - base_log
        fds = api.open_fds()
        attacker.close()
        worst = max(r[0] for r in results)
        outcomes = Counter(r[1] for r in results)
        wrong = sum(r[1] != r[2] for r in results)
        how = (f"{first!r}-then-silent" if first else "idle") + (
            f", reconnecting ({attacker.connects:,} connects)" if reconnect else "")
        print(f"fds: {attacker.held} {how} sockets against a 200-descriptor limit; {len(results)} legitimate "
              f"requests in 10 s (GET /health, POST with and without a key, each on a new connection), "
              f"answers {dict(sorted(outcomes.items()))}, {wrong} not the expected 200/201/401, slowest "
              f"{worst:.2f} s; API logged {logged:,} bytes besides the reports' own lines; the API holds "
              f"{fds} descriptors")
    finally:
        api.close()


def flood_body(mib: int) -> bytes:
    """About ``mib`` MiB of empty replay events: the cheapest body to send, the dearest to parse."""
    n = mib * 1024 * 1024 // 3
    return b'{"title":"big","sessionReplay":{"events":[' + b",".join([b"{}"] * n) + b"]}}"


def real_body(mib: int) -> bytes:
    """About ``mib`` MiB of a real rrweb recording (the corpus's 158 KB one, repeated)."""
    events = json.loads((CORPORA / "replays/rrweb-player-demoit-2018.json").read_text())
    times = max(1, mib * 1024 * 1024 // 158_000)
    return json.dumps({"title": "big", "sessionReplay": {"events": events * times}}).encode()


def memory_round(name: str, body: bytes, parallel: int) -> None:
    api = Api()
    try:
        rss0 = api.status("VmRSS")
        answers: list[str] = []
        stop = threading.Event()
        health: list[float] = []

        def probe() -> None:
            while not stop.is_set():
                health.append(timed_get(api, timeout=60)[0])
                time.sleep(0.05)

        def post() -> None:
            try:
                r = httpx.post(api.base + "/api/v1/reports", content=body, timeout=300,
                               headers={"X-API-Key": KEY, "Content-Type": "application/json"})
                answers.append(str(r.status_code))
            except httpx.HTTPError as exc:
                answers.append(type(exc).__name__)

        prober = threading.Thread(target=probe)
        prober.start()
        t0 = time.monotonic()
        posts = [threading.Thread(target=post) for _ in range(parallel)]
        for t in posts:
            t.start()
        for t in posts:
            t.join()
        took = time.monotonic() - t0
        stop.set()
        prober.join()
        peak, after = api.status("VmHWM"), api.status("VmRSS")
        ratio = (peak - rss0) / (parallel * len(body))
        print(f"memory: {parallel} x {len(body) / 2**20:.0f} MiB of {name}: answers {answers} in {took:.1f} s; "
              f"peak RSS {peak / 2**20:,.0f} MiB ({ratio:.1f}x the bodies above the idle "
              f"{rss0 / 2**20:.0f} MiB), RSS after {after / 2**20:,.0f} MiB; slowest /health meanwhile "
              f"{max(health, default=0) * 1000:,.0f} ms")
    finally:
        api.close()


def scenario_memory(mib: int, real: bool) -> None:
    flood = flood_body(mib)
    for parallel in (1, 3):
        memory_round("{} events", flood, parallel)
    if real:
        memory_round("real rrweb events", real_body(mib), 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["sockets", "fds", "memory"])
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--real", action="store_true", help="also one body of real rrweb events")
    ap.add_argument("--hold", type=float, default=15, help="seconds the hostile sockets are kept up")
    args = ap.parse_args()
    if args.only in (None, "sockets"):
        scenario_sockets(args.hold)
    if args.only in (None, "fds"):
        scenario_fds()
        scenario_fds(reconnect=True)
        scenario_fds(first=b"G")
        scenario_fds(reconnect=True, first=b"G")
    if args.only in (None, "memory"):
        scenario_memory(args.mib, args.real)


if __name__ == "__main__":
    main()
