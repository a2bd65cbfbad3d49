"""The jobq CLI through click's runner against real Redis, and /metrics scraped over HTTP."""

import json
import shutil
import subprocess

import click
import httpx
import pytest
from jobq import JobFailed, QueueSpec, hookimpl
from jobq.plugins import PluginHost
from jobq.testing import cli_invoker, wait_until
from prometheus_client.parser import text_string_to_metric_families


def work(job):
    if job.data.get("fail"):
        raise JobFailed("nope", code="ERR_NOPE", retryable=False)
    return {"n": job.data.get("n")}


SPEC = QueueSpec(name="clitest", handler=work, concurrency=2, retries=0)



@pytest.fixture
def cli_env(jobq_settings, monkeypatch):
    return cli_invoker(jobq_settings, monkeypatch, SPEC)


def test_enqueue_job_stats_pause_resume(cli_env, jobq_harness):
    r = cli_env("enqueue", "clitest", '{"n": 7}', "--job-id", "c1", "--priority", "3")
    assert r.exit_code == 0 and r.output.strip() == "c1"
    shown = json.loads(cli_env("job", "clitest", "c1", "--json").output)
    assert shown["state"] == "waiting" and shown["data"] == {"n": 7} and shown["options"]["priority"] == 3
    assert cli_env("pause", "clitest").exit_code == 0
    stats = json.loads(cli_env("stats", "--json").output)
    assert stats["queues"]["clitest"]["paused"] == 1
    assert cli_env("resume", "clitest").exit_code == 0
    jobq_harness.start(SPEC)
    wait_until(lambda: json.loads(cli_env("job", "clitest", "c1", "--json").output)["state"] == "completed", 10)
    human = cli_env("job", "clitest", "c1").output
    assert "completed" in human and '"n": 7' in human


def test_enqueue_errors_exit_non_zero(cli_env):
    bad_json = cli_env("enqueue", "clitest", "{nope")
    assert bad_json.exit_code != 0 and "not JSON" in bad_json.output
    unknown = cli_env("enqueue", "no-such-queue", "{}")
    assert unknown.exit_code != 0 and "unknown queue" in unknown.output
    bad_opt = cli_env("enqueue", "clitest", "{}", "--priority", "99999")
    assert bad_opt.exit_code != 0 and "priority" in bad_opt.output
    missing = cli_env("job", "clitest", "ghost")
    assert missing.exit_code != 0 and "ghost" in missing.output


def test_failed_list_retry_purge(cli_env, jobq_harness):
    jobq_harness.start(SPEC)
    for i in range(3):
        cli_env("enqueue", "clitest", '{"fail": true}', "--job-id", f"f{i}")
    wait_until(lambda: len(json.loads(cli_env("failed", "list", "clitest", "--json").output)) == 3, 10)
    rows = json.loads(cli_env("failed", "list", "clitest", "--json").output)
    assert {r["failure"]["code"] for r in rows} == {"ERR_NOPE"}
    assert "retried 1 job(s)" in cli_env("failed", "retry", "clitest", "f0").output
    wait_until(lambda: json.loads(cli_env("job", "clitest", "f0", "--json").output)["state"] == "failed", 10)
    assert json.loads(cli_env("job", "clitest", "f0", "--json").output)["attempts"] == 2
    refused = cli_env("failed", "purge", "clitest")  # no answer on stdin: nothing is deleted
    assert refused.exit_code == 1 and "delete 3 failed job(s) of clitest" in refused.output
    assert len(json.loads(cli_env("failed", "list", "clitest", "--json").output)) == 3
    assert "purged 3 job(s)" in cli_env("failed", "purge", "clitest", "--yes").output
    assert json.loads(cli_env("failed", "list", "clitest", "--json").output) == []


def test_health_exit_codes(cli_env, jobq_harness):
    assert cli_env("health").exit_code == 1
    jobq_harness.start(SPEC)
    r = cli_env("health", "--json")
    assert r.exit_code == 0 and json.loads(r.output)["alive_workers"] == 1


def test_plugins_lists_queues(cli_env):
    rows = json.loads(cli_env("plugins", "--json").output)
    assert any(r["queues"] == ["clitest"] for r in rows)


def test_run_refuses_unknown_queue(cli_env):
    r = cli_env("run", "--queue", "nope")
    assert r.exit_code != 0 and "nope" in r.output


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_metrics_endpoint(jobq_harness, tmp_path):
    from jobq import metrics

    host = PluginHost(group="jobq.none").load()
    port = _free_port()
    jobq_harness.manager.specs["clitest"] = SPEC
    worker = jobq_harness.start(SPEC, hooks=host)
    server = metrics.serve(port, jobq_harness.settings, worker, addr="127.0.0.1")
    try:
        for i in range(3):
            jobq_harness.manager.add_job("clitest", f"ok{i}", {"n": i})
        jobq_harness.manager.add_job("clitest", "bad", {"fail": True})
        for jid in ("ok0", "ok1", "ok2", "bad"):
            jobq_harness.wait("clitest", jid)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        samples = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        assert samples[("jobq_jobs_completed_total", (("queue", "clitest"),))] >= 3
        assert samples[("jobq_jobs_failed_total", (("queue", "clitest"), ("reason", "ERR_NOPE")))] == 1
        assert samples[("jobq_queue_jobs", (("queue", "clitest"), ("state", "completed")))] == 3
        assert samples[("jobq_job_duration_seconds_count", (("queue", "clitest"),))] >= 3
        assert samples[("jobq_workers_alive", ())] >= 1
        assert samples[("jobq_queue_stalls", (("queue", "clitest"),))] == 0
        assert samples[("jobq_queue_rate_limited", (("queue", "clitest"),))] == 0
        assert samples[("jobq_queue_groups", (("queue", "clitest"), ("state", "paused")))] == 0
        assert not any("group" in dict(labels) for _, labels in samples)  # no per-group label
        promtool = shutil.which("promtool")
        if promtool:
            check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
            assert check.returncode == 0, check.stdout + check.stderr
        (tmp_path / "metrics.txt").write_text(text)
    finally:
        server.shutdown()


def test_select_specs_env_and_flags(monkeypatch):
    from jobq.cli import select_specs

    class Two:
        @hookimpl
        def jobq_queues(self):
            return [QueueSpec(name="qa", handler=work, concurrency=2), QueueSpec(name="qb", handler=work)]

    host = PluginHost(group="jobq.none").load(extra=[Two()])
    name = next(iter(host.plugins))
    key = name.upper()
    assert [s.name for s in select_specs(host, (), ())] == ["qa", "qb"]
    monkeypatch.setenv("WORKER_TYPES", "qb")
    assert [s.name for s in select_specs(host, (), ())] == ["qb"]
    assert [s.name for s in select_specs(host, ("qa",), ())] == ["qa"]  # flags override the environment
    monkeypatch.delenv("WORKER_TYPES")
    monkeypatch.setenv(f"WORKER_{key}_CONCURRENCY", "7")
    assert {s.name: s.concurrency for s in select_specs(host, (), ())} == {"qa": 7, "qb": 7}
    assert {s.name: s.concurrency for s in select_specs(host, (), ("qa=3",))}["qa"] == 3
    monkeypatch.setenv(f"WORKER_{key}_RATE_LIMIT", "100/60")
    assert {s.name: s.rate_limit for s in select_specs(host, (), ())} == {"qa": (100, 60.0), "qb": (100, 60.0)}
    monkeypatch.setenv(f"WORKER_{key}_RATE_LIMIT", "100 per minute")
    with pytest.raises(click.ClickException, match=f"WORKER_{key}_RATE_LIMIT"):
        select_specs(host, (), ())
    monkeypatch.delenv(f"WORKER_{key}_RATE_LIMIT")
    monkeypatch.setenv(f"WORKER_{key}_ENABLED", "false")
    assert select_specs(host, (), ()) == []


def test_stuck_fetch_loop_reports_unhealthy(jobq_harness):
    w = jobq_harness.start(SPEC)
    assert w.health()["healthy"] is True
    w.runners[0].last_tick -= 3600  # as if the pump had been stuck for an hour
    assert w.health()["healthy"] is False
