"""Discovery from real installs: wheels of the core and of third-party plugins in a fresh venv."""

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis
from jobq.testing import delete_prefix, redis_test_url, wait_until

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = Path(__file__).resolve().parent / "plugins"


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheels")
    wheels = tmp / "wheels"
    for src in (ROOT / "core", PLUGINS / "chaos", PLUGINS / "broken"):
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(src)],
                       check=True, capture_output=True)
    env_dir = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q"]
    core = next(wheels.glob("jobq-*.whl"))
    chaos = next(wheels.glob("jobq_plugin_chaos-*.whl"))
    subprocess.run([*pip, str(core), str(chaos)], check=True, capture_output=True)
    return env_dir, wheels, pip


def jobq(env_dir, *args, env=None, check=False):
    return subprocess.run([str(env_dir / "bin" / "jobq"), *args], capture_output=True, text=True, env=env,
                          timeout=60, check=check)


@pytest.fixture
def prefix_env():
    prefix = f"jobqw-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "REDIS_URL": redis_test_url(), "JOBQ_PREFIX": prefix, "JOBQ_LEASE_SECONDS": "5",
           "JOBQ_SHUTDOWN_GRACE": "5"}
    env.pop("JOBQ_DISABLE_PLUGINS", None)
    yield env
    c = redis.Redis.from_url(redis_test_url())
    delete_prefix(c, prefix)
    c.close()


@pytest.mark.slow
def test_installed_plugin_is_listed_and_runs(venv, prefix_env):
    env_dir, _wheels, _pip = venv
    listed = json.loads(jobq(env_dir, "plugins", "--json", env=prefix_env, check=True).stdout)
    chaos = next(p for p in listed if p["name"] == "chaos")
    assert (chaos["distribution"], chaos["version"], chaos["queues"]) == ("jobq-plugin-chaos", "1.2.3", ["chaos"])
    run = subprocess.Popen([str(env_dir / "bin" / "jobq"), "run"], env=prefix_env, stderr=subprocess.PIPE, text=True)
    try:
        ids = [jobq(env_dir, "enqueue", "chaos", json.dumps({"n": i}), env=prefix_env, check=True).stdout.strip()
               for i in range(5)]

        def done():
            states = [json.loads(jobq(env_dir, "job", "chaos", i, "--json", env=prefix_env).stdout) for i in ids]
            return states if all(s["state"] == "completed" for s in states) else None

        states = wait_until(done, 30, 0.2, "chaos jobs completed by `jobq run`")
        assert sorted(s["result"]["n"] for s in states) == [0, 1, 2, 3, 4]
        assert {s["result"]["pid"] for s in states} == {run.pid}
        assert jobq(env_dir, "health", env=prefix_env).returncode == 0
        code = ("from jobq import QueueManager; from jobq.plugins import load_plugins; "
                "m = QueueManager(specs=load_plugins().specs.values()); "
                "print(' '.join(j.id for j in m.add_jobs('chaos', [(None, {'sleep': 2.0}) for _ in range(6)])))")
        slow = subprocess.run([str(env_dir / "bin" / "python"), "-c", code], env=prefix_env, capture_output=True,
                              text=True, check=True).stdout.split()
        wait_until(lambda: json.loads(jobq(env_dir, "stats", "--json", env=prefix_env).stdout)["queues"]["chaos"]
                   ["active"] > 0, 10, 0.05, "slow jobs active")
    finally:
        run.send_signal(signal.SIGTERM)
        assert run.wait(20) == 0
    # SIGTERM with jobs active lost none: the active ones finished, the rest still wait for a worker
    states = [json.loads(jobq(env_dir, "job", "chaos", i, "--json", env=prefix_env).stdout)["state"] for i in slow]
    assert set(states) <= {"completed", "waiting"} and states.count("completed") >= 1
    assert json.loads(jobq(env_dir, "stats", "--json", env=prefix_env).stdout)["queues"]["chaos"]["active"] == 0


@pytest.mark.slow
def test_broken_plugin_is_reported_and_blocks_run(venv, prefix_env):
    env_dir, wheels, pip = venv
    broken = next(wheels.glob("jobq_plugin_broken-*.whl"))
    subprocess.run([*pip, "--no-deps", str(broken)], check=True, capture_output=True)
    try:
        listing = jobq(env_dir, "plugins", env=prefix_env)
        assert listing.returncode == 1
        assert "broken" in listing.stdout and "jobq_no_such_dependency" in listing.stdout
        stats = jobq(env_dir, "stats", "--json", env=prefix_env)
        assert stats.returncode == 0 and "broken" in json.loads(stats.stdout)["plugin_failures"]
        refused = jobq(env_dir, "run", env=prefix_env)
        assert refused.returncode != 0
        assert "refusing to start" in refused.stderr and "broken" in refused.stderr
        env = {**prefix_env, "WORKER_BROKEN_ENABLED": "false"}
        run = subprocess.Popen([str(env_dir / "bin" / "jobq"), "run"], env=env, stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: jobq(env_dir, "health", env=env).returncode == 0, 20, 0.2, "worker healthy")
        finally:
            run.send_signal(signal.SIGTERM)
            assert run.wait(20) == 0
    finally:
        subprocess.run([*pip[:-2], "uninstall", "-y", "-q", "jobq-plugin-broken"], capture_output=True)
