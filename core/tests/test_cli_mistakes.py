"""The CLI catches a new user's mistakes: unknown queues, big payloads, reused ids, broken plugins."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from jobq import QueueSpec, hookimpl
from jobq.cli import Ctx, cli
from jobq.plugins import PluginHost
from jobq.testing import cli_invoker

JOBQ = str(Path(sys.executable).with_name("jobq"))


def work(job):
    return {"n": len(json.dumps(job.data))}


SPEC = QueueSpec(name="screenshots-cli", handler=work, concurrency=1, retries=0)



@pytest.fixture
def invoke(jobq_settings, monkeypatch):
    return cli_invoker(jobq_settings, monkeypatch, SPEC)


@pytest.mark.parametrize("args", [
    ("pause", "screenshot-cli"), ("resume", "screenshot-cli"), ("failed", "list", "screenshot-cli"),
    ("failed", "retry", "screenshot-cli", "--all"), ("failed", "purge", "screenshot-cli", "--yes"),
    ("job", "screenshot-cli", "j1"), ("enqueue", "screenshot-cli", "{}"), ("run", "--queue", "screenshot-cli"),
    ("cancel", "screenshot-cli", "j1"), ("schedules", "list", "screenshot-cli"),
    ("schedules", "add", "screenshot-cli", "nightly", "--every", "60"), ("schedules", "remove", "screenshot-cli", "n"),
    ("schedules", "trigger", "screenshot-cli", "n"), ("schedules", "pause", "screenshot-cli", "n"),
    ("schedules", "resume", "screenshot-cli", "n"), ("stats", "--history", "-q", "screenshot-cli"),
])
def test_unknown_queue_is_refused_with_the_closest_name(invoke, args):
    r = invoke(*args)
    assert r.exit_code != 0, r.output
    assert "'screenshot-cli'" in r.output and "did you mean 'screenshots-cli'?" in r.output


def test_enqueue_reads_a_file_and_stdin_with_options(invoke, tmp_path, jobq_settings):
    big = {"blob": "x" * 300_000}  # larger than many shells accept in one argument
    path = tmp_path / "job.json"
    path.write_text(json.dumps(big))
    r = invoke("enqueue", "screenshots-cli", f"@{path}", "--job-id", "f1", "--backoff", "2.5", "--timeout", "30",
               "--name", "big one")
    assert r.exit_code == 0 and r.output.strip() == "f1"
    shown = json.loads(invoke("job", "screenshots-cli", "f1", "--json").output)
    assert shown["data"] == big and shown["name"] == "big one"
    assert (shown["options"]["backoff"], shown["options"]["timeout"]) == (2.5, 30)
    r = invoke("enqueue", "screenshots-cli", "-", "--job-id", "s1", input='{"from": "stdin"}')
    assert r.exit_code == 0 and r.output.strip() == "s1"
    assert json.loads(invoke("job", "screenshots-cli", "s1", "--json").output)["data"] == {"from": "stdin"}
    missing = invoke("enqueue", "screenshots-cli", f"@{tmp_path}/nope.json")
    assert missing.exit_code == 2 and "DATA" in missing.output and "nope.json" in missing.output
    bad = invoke("enqueue", "screenshots-cli", "-", input="{oops")
    assert bad.exit_code == 2 and "stdin is not JSON" in bad.output


def test_reenqueueing_an_existing_id_says_so(invoke, jobq_harness):
    assert invoke("enqueue", "screenshots-cli", '{"a": 1}', "--job-id", "dup").output.strip() == "dup"
    again = invoke("enqueue", "screenshots-cli", '{"a": 2}', "--job-id", "dup")
    assert again.exit_code == 0 and "dup already exists in screenshots-cli (state: waiting)" in again.output
    jobq_harness.start(SPEC)
    jobq_harness.wait("screenshots-cli", "dup")
    shown = json.loads(invoke("enqueue", "screenshots-cli", '{"a": 3}', "--job-id", "dup", "--json").output)
    assert shown == {"id": "dup", "queue": "screenshots-cli", "created": False, "state": "completed"}
    fresh = json.loads(invoke("enqueue", "screenshots-cli", "{}", "--job-id", "new", "--json").output)
    assert fresh["created"] is True and fresh["state"] == "waiting"


def test_version():
    from importlib.metadata import version

    r = CliRunner().invoke(cli, ["--version"], obj=Ctx(PluginHost(group="jobq.none")))
    assert r.exit_code == 0 and r.output.strip().endswith(version("jobq"))


class Broken:
    @hookimpl
    def jobq_queues(self):
        raise RuntimeError("cannot build the spec")


def test_broken_plugin_traceback_and_ways_out(jobq_settings, monkeypatch):
    monkeypatch.setenv("REDIS_URL", jobq_settings.redis_url)
    monkeypatch.setenv("JOBQ_PREFIX", jobq_settings.prefix)
    host = PluginHost(group="jobq.none").load(extra=[Broken()])
    runner = CliRunner()
    plain = runner.invoke(cli, ["plugins"], obj=Ctx(host))
    assert plain.exit_code == 1 and "BROKEN" in plain.output and "Traceback" not in plain.output
    shown = runner.invoke(cli, ["plugins", "--traceback"], obj=Ctx(host))
    assert "Traceback (most recent call last)" in shown.output and 'raise RuntimeError("cannot build' in shown.output
    run = runner.invoke(cli, ["run"], obj=Ctx(host))
    assert run.exit_code == 1
    assert "WORKER_BROKEN_ENABLED=false" in run.output and "JOBQ_DISABLE_PLUGINS=broken" in run.output


def _one_line_error(args, env, limit=5.0):
    started = time.monotonic()
    proc = subprocess.run([JOBQ, *args], capture_output=True, text=True, timeout=30, env={**os.environ, **env})
    took = time.monotonic() - started
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, proc.stderr
    assert took < limit, f"took {took:.1f} s"
    return errors[0]


def _closed_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_redis_is_one_line_within_5s():
    line = _one_line_error(["stats"], {"REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0"})
    assert "Redis" in line and "ConnectionError" in line


def test_unreachable_postgres_is_one_line_within_5s(tmp_path):
    env = {"DATABASE_URL": f"postgresql://jobq:secret-pw@127.0.0.1:{_closed_port()}/test",
           "JOBQ_API_KEYS": "p1:key-0123456789abcdef"}
    line = _one_line_error(["api", "--port", "0"], env, limit=8.0)  # interpreter start + the 4 s connect budget
    assert "DATABASE_URL: cannot reach PostgreSQL" in line and "secret-pw" not in line


def test_missing_postgres_driver_is_one_line(tmp_path):
    shadow = tmp_path / "shadow" / "psycopg"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named psycopg', name='psycopg')\n")
    env = {"DATABASE_URL": "postgresql://127.0.0.1:5432/test", "JOBQ_API_KEYS": "p1:key-0123456789abcdef",
           "PYTHONPATH": str(tmp_path / "shadow")}
    line = _one_line_error(["api", "--port", "0"], env)
    assert "jobq-bugreports[postgres]" in line
