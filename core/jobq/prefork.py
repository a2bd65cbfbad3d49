"""``jobq run --processes N``: a supervisor keeping N worker processes running.

One asyncio worker uses one core; a machine with more cores runs one per core, as Celery's
prefork pool, Dramatiq's ``--processes`` and gunicorn do. Each child re-runs the very command
the supervisor was started with (``sys.orig_argv``), told by ``JOBQ_PREFORK_SLOT`` that it is a
child, so plugins load in the child exactly as in a plain ``jobq run``.

- A child that exits while the supervisor is not stopping is restarted after a backoff that
  doubles per quick failure (0.5 s up to 30 s) and resets once a child ran for a minute.
- SIGTERM or SIGINT is forwarded as SIGTERM: every child drains within ``JOBQ_SHUTDOWN_GRACE``;
  one still running 10 s after that is killed (its jobs come back through lease expiry).
- The exit code says what happened (:data:`EXIT_OK`, :data:`EXIT_UNCLEAN`).
- Children write their counters and histograms to ``PROMETHEUS_MULTIPROC_DIR`` and the supervisor
  serves one ``/metrics`` summing them; ``jobq health`` counts each supervisor's live children.
- Children die with the supervisor (``PR_SET_PDEATHSIG``), so no orphan keeps serving.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from .config import Settings

log = logging.getLogger(__name__)

SLOT_ENV = "JOBQ_PREFORK_SLOT"
SUPERVISOR_ENV = "JOBQ_PREFORK_SUPERVISOR"
PROCESSES_ENV = "JOBQ_PREFORK_PROCESSES"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

EXIT_OK = 0  #: stopped by SIGTERM/SIGINT; every child drained and exited 0
EXIT_UNCLEAN = 3  #: stopped, but a child exited non-zero while draining or had to be killed
BACKOFF_FIRST, BACKOFF_MAX, HEALTHY_AFTER = 0.5, 30.0, 60.0


def cpu_count() -> int:
    """CPUs this process may run on (``auto``), at least 1."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def parse_processes(value: str) -> int:
    """``N`` (1-1024) or ``auto``; raises ``ValueError`` naming the option."""
    if value.strip().lower() == "auto":
        return cpu_count()
    if not value.strip().isdigit() or not 1 <= int(value) <= 1024:
        raise ValueError(f"--processes must be a whole number from 1 to 1024 or 'auto', got {value!r}")
    return int(value)


def child_info() -> dict[str, Any] | None:
    """In a child: ``{"id", "slot", "processes"}`` of its supervisor, for the worker's presence."""
    slot = os.environ.get(SLOT_ENV)
    if slot is None:
        return None
    return {"id": os.environ.get(SUPERVISOR_ENV, ""), "slot": int(slot),
            "processes": int(os.environ.get(PROCESSES_ENV, "1"))}


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies (Linux; elsewhere a no-op)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class _Child:
    __slots__ = ("failures", "proc", "restart_at", "slot", "started", "worker_id")

    def __init__(self, slot: int) -> None:
        self.slot = slot
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.failures = 0
        self.restart_at = 0.0
        self.worker_id = ""


class Supervisor:
    """Start ``processes`` children running ``argv`` and keep them running until SIGTERM/SIGINT.

    :param processes: how many worker processes.
    :param settings: for the shutdown grace and for clearing a dead child's presence in Redis.
    :param argv: the command a child runs (default: this process's own command line).
    :param metrics: ``(port, addr)`` to serve the children's summed metrics, or ``None``.
    :param queues: the queues the children serve, to withdraw a dead child's idle offers.
    """

    def __init__(self, processes: int, settings: Settings, *, argv: list[str] | None = None,
                 metrics: tuple[int, str] | None = None, queues: list[str] | None = None) -> None:
        self.processes = processes
        self.settings = settings
        self.queues = queues or []
        self.argv = argv or list(sys.orig_argv)
        self.metrics = metrics
        self.id = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        self.children = [_Child(i) for i in range(processes)]
        self.stopping = False
        self._wake = threading.Event()
        self.metrics_dir: str | None = None
        self.server: Any = None
        self._generation = 0

    # -- children ------------------------------------------------------------------------------
    def _spawn(self, child: _Child) -> None:
        self._generation += 1
        child.worker_id = f"{self.id}.{child.slot}.{self._generation}"
        env = {**os.environ, SLOT_ENV: str(child.slot), SUPERVISOR_ENV: self.id,
               PROCESSES_ENV: str(self.processes), "JOBQ_WORKER_ID": child.worker_id}
        if self.metrics_dir:
            env[MULTIPROC_ENV] = self.metrics_dir
        child.proc = subprocess.Popen(self.argv, env=env, preexec_fn=_die_with_parent)
        child.started = time.monotonic()
        log.info("supervisor %s: started child %d (pid %d)", self.id, child.slot, child.proc.pid)

    def _reaped(self, child: _Child, code: int) -> None:
        """A child exited: forget its metrics' live files and its presence, plan its restart."""
        pid = child.proc.pid if child.proc else 0
        child.proc = None
        if self.metrics_dir:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid, self.metrics_dir)
        self._forget(child.worker_id)
        if self.stopping:
            return
        ran = time.monotonic() - child.started
        child.failures = 1 if ran >= HEALTHY_AFTER else child.failures + 1
        delay = min(BACKOFF_FIRST * 2 ** (child.failures - 1), BACKOFF_MAX)
        child.restart_at = time.monotonic() + delay
        how = f"signal {-code}" if code < 0 else f"code {code}"
        log.error("supervisor %s: child %d (pid %d) exited with %s after %.1fs; restarting in %.1fs",
                  self.id, child.slot, pid, how, ran, delay)

    def _forget(self, worker_id: str) -> None:
        """Clear what a dead child left in Redis: its presence (``jobq health`` shows it missing until
        it is restarted) and its idle offers, handing back a job enqueue gave it meanwhile, so no
        job waits for the lease to expire because of an offer from a process that no longer exists."""
        from .keys import QueueKeys, worker_key, workers_key
        from .queue import make_client
        from .scripts import Scripts

        s = self.settings
        try:
            client = make_client(s)
            try:
                client.zrem(workers_key(s.prefix), worker_id)
                client.delete(worker_key(s.prefix, worker_id))
                scripts = None
                for queue in self.queues:
                    k = QueueKeys(s.prefix, queue)
                    if client.zrem(k.idle, f"{int(s.lease_seconds * 1000)}|{worker_id}"):
                        continue
                    while (record := client.lpop(k.inbox(worker_id))) is not None:
                        job_id, token = json.loads(record)[:2]
                        scripts = scripts or Scripts(client)
                        scripts.release(keys=[k.job(job_id), k.active, k.wait, k.prio, k.marker, k.events, k.seq],
                                        args=[job_id, token, s.events_maxlen])
            finally:
                client.close()
        except Exception as exc:  # Redis down: the record expires on its own
            log.warning("supervisor %s: could not clear child presence (%s)", self.id, type(exc).__name__)

    # -- signals -------------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: Any) -> None:
        if not self.stopping:
            log.info("supervisor %s: %s, draining %d children", self.id, signal.Signals(signum).name,
                     sum(c.proc is not None for c in self.children))
        self.stopping = True
        self._wake.set()

    # -- main loop -----------------------------------------------------------------------------
    def run(self) -> int:
        """Supervise until SIGTERM/SIGINT; return the exit code."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        if self.metrics is not None:
            self.metrics_dir = tempfile.mkdtemp(prefix="jobq-metrics-")
            self._serve_metrics(*self.metrics)
        try:
            for c in self.children:
                if not self.stopping:
                    self._spawn(c)
            while not self.stopping:
                self._wake.wait(0.2)
                self._wake.clear()
                now = time.monotonic()
                for c in self.children:
                    if c.proc is not None:
                        code = c.proc.poll()
                        if code is not None:
                            self._reaped(c, code)
                    elif not self.stopping and now >= c.restart_at:
                        self._spawn(c)
            return self._drain()
        finally:
            if self.server is not None:
                self.server.shutdown()
            if self.metrics_dir:
                shutil.rmtree(self.metrics_dir, ignore_errors=True)

    def _drain(self) -> int:
        running = [c for c in self.children if c.proc is not None]
        for c in running:
            c.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + self.settings.shutdown_grace + 10
        unclean = 0
        for c in running:
            proc = c.proc
            assert proc is not None
            try:
                code = proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.error("supervisor %s: child %d (pid %d) did not drain in time; killing it",
                          self.id, c.slot, proc.pid)
                proc.kill()
                code = proc.wait()
            if code != 0:
                unclean += 1
                log.error("supervisor %s: child %d (pid %d) exited with %s while draining",
                          self.id, c.slot, proc.pid, code)
            self._reaped(c, code)
        log.info("supervisor %s: stopped (%d of %d children drained cleanly)", self.id, len(running) - unclean,
                 len(running))
        return EXIT_UNCLEAN if unclean else EXIT_OK

    # -- metrics -------------------------------------------------------------------------------
    def _serve_metrics(self, port: int, addr: str) -> None:
        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.multiprocess import MultiProcessCollector

        from .metrics import RedisCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.metrics_dir)
        registry.register(RedisCollector(self.settings, supervisor=self.id))
        self.server, _thread = start_http_server(port, addr=addr, registry=registry)


def children_summary(workers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per supervisor seen in the worker list: how many of its slots have a live child."""
    groups: dict[str, dict[str, Any]] = {}
    for w in workers:
        sup = w.get("supervisor")
        if not isinstance(sup, dict) or not sup.get("id"):
            continue
        g = groups.setdefault(sup["id"], {"id": sup["id"], "processes": int(sup.get("processes", 1)),
                                          "alive_slots": set()})
        if w.get("alive"):
            g["alive_slots"].add(sup.get("slot"))
    return [{"id": g["id"], "processes": g["processes"], "alive": len(g["alive_slots"]),
             "healthy": len(g["alive_slots"]) >= g["processes"]} for g in groups.values()]
