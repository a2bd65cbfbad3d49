"""``jobq run --processes N`` with real processes: restart after SIGKILL, drain on SIGTERM, one /metrics."""

import os
import signal
import socket
import subprocess
import sys

import httpx
import pytest
from click.testing import CliRunner
from jobq.cli import Ctx, cli
from jobq.plugins import PluginHost
from jobq.prefork import children_summary, parse_processes
from jobq.queue import QueueManager
from jobq.testing import wait_until
from prometheus_client.parser import text_string_to_metric_families

HERE = os.path.dirname(os.path.abspath(__file__))
APP = os.path.join(HERE, "prefork_app.py")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _samples(port):
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


@pytest.fixture
def supervisor(jobq_settings):
    s = jobq_settings
    port = _free_port()
    env = {**os.environ, "REDIS_URL": s.redis_url, "JOBQ_PREFIX": s.prefix, "JOBQ_SHUTDOWN_GRACE": "10",
           "JOBQ_LEASE_SECONDS": "5", "STORAGE_URL": s.storage_url}
    proc = subprocess.Popen([sys.executable, APP, "run", "--processes", "2", "--metrics-port", str(port),
                             "--metrics-addr", "127.0.0.1"], env=env)
    m = QueueManager(s, strict=False)
    try:
        yield proc, m, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        m.shutdown()


def _children(m):
    return {w["supervisor"]["slot"]: w for w in m.list_workers() if w.get("supervisor") and w["alive"]}


def test_processes_option():
    assert parse_processes("3") == 3
    assert parse_processes("auto") >= 1
    for bad in ("0", "-1", "x", "2000"):
        with pytest.raises(ValueError, match="--processes"):
            parse_processes(bad)


def test_children_summary_counts_live_slots():
    sup = {"id": "s1", "processes": 2}
    workers = [{"alive": True, "supervisor": {**sup, "slot": 0}},
               {"alive": False, "supervisor": {**sup, "slot": 1}},
               {"alive": True}]
    assert children_summary(workers) == [{"id": "s1", "processes": 2, "alive": 1, "healthy": False}]


@pytest.mark.slow
def test_prefork_restarts_sums_metrics_and_drains(supervisor):
    proc, m, port = supervisor
    wait_until(lambda: len(_children(m)) == 2, 60, message="two children serving")
    # every counter exists at 0 before the first job, summed over both children
    samples = wait_until(lambda: _samples(port), 10)
    assert samples[("jobq_jobs_completed_total", (("queue", "pf"),))] == 0
    assert samples[("jobq_jobs_failed_total", (("queue", "pf"), ("reason", "ERR_PF")))] == 0
    assert samples[("jobq_jobs_retried_total", (("queue", "pf"), ("reason", "ERR_TIMEOUT")))] == 0

    ids = [m.add_job("pf", None, {"sleep": 0.05}).id for _ in range(40)]
    wait_until(lambda: m.get_queue_metrics("pf")["completed"] == 40, 30, message="40 jobs done")
    pids = {m.get_job("pf", i).result for i in ids}
    assert pids == {w["pid"] for w in _children(m).values()}  # both children ran jobs: the sums below span both
    samples = _samples(port)
    assert samples[("jobq_jobs_completed_total", (("queue", "pf"),))] == 40
    assert samples[("jobq_jobs_started_total", (("queue", "pf"),))] == 40
    assert samples[("jobq_job_wait_seconds_count", (("queue", "pf"),))] == 40
    assert samples[("jobq_workers_alive", ())] == 2

    # SIGKILL one child: health shows it missing at once, then the supervisor restarts it
    report = m.health_check()
    assert report["healthy"] and report["supervisors"][0]["alive"] == 2
    victim = _children(m)[0]["pid"]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: not m.health_check()["healthy"], 10, message="health reports the dead child")
    out = CliRunner().invoke(cli, ["health"], obj=Ctx(PluginHost(group="jobq.none")),
                             env={"REDIS_URL": m.settings.redis_url, "JOBQ_PREFIX": m.settings.prefix})
    assert out.exit_code == 1 and "1 of 2 processes alive (MISSING CHILDREN)" in out.output
    wait_until(lambda: len(_children(m)) == 2 and _children(m)[0]["pid"] != victim, 60,
               message="child restarted")
    assert m.health_check()["healthy"]

    # SIGTERM the supervisor with jobs running: all drain, exit 0, nothing stalls
    ids = [m.add_job("pf", None, {"sleep": 1.0}).id for _ in range(6)]
    wait_until(lambda: m.get_queue_metrics("pf")["active"] >= 4, 20, message="jobs running")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(40) == 0
    states = {m.get_job("pf", i).state for i in ids}
    assert states <= {"completed", "waiting"} and "completed" in states
    assert "stalled" not in m.get_counters("pf")
    assert m.list_workers() == []
