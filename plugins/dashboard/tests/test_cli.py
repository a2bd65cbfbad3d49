"""``jobq dashboard`` and ``jobq dashboard hash-password`` through click's runner."""

from __future__ import annotations

from click.testing import CliRunner
from jobq.cli import Ctx, cli
from jobq.plugins import PluginHost
from jobq_dashboard import jobq_cli_commands
from jobq_dashboard.auth import parse_users, verify_password
from jobq_dashboard.cli import dashboard, is_loopback


def run(*args, input=None, env=None):
    jobq_cli_commands(cli)
    return CliRunner().invoke(cli, list(args), input=input, env=env, obj=Ctx(PluginHost(group="jobq.none").load()))


def test_hash_password_reads_stdin_and_verifies():
    r = run("dashboard", "hash-password", input="correct horse\n")
    assert r.exit_code == 0, r.output
    h = r.output.strip()
    assert h.startswith("scrypt$15$") and ":" not in h and "," not in h
    assert verify_password("correct horse", h) and not verify_password("wrong", h)
    users = parse_users(f"ann:admin:{h}, bob:viewer:{h}")
    assert users["ann"].admin and not users["bob"].admin


def test_insecure_mode_only_on_loopback_and_users_required():
    r = run("dashboard", "--insecure-no-auth", "--host", "0.0.0.0", env={"JOBQ_DASHBOARD_USERS": ""})
    assert r.exit_code != 0 and "refused on 0.0.0.0" in r.output
    r = run("dashboard", "--port", "0", env={"JOBQ_DASHBOARD_USERS": ""})
    assert r.exit_code != 0 and "no dashboard users" in r.output
    r = run("dashboard", env={"JOBQ_DASHBOARD_USERS": "x:admin:nothash"})
    assert r.exit_code != 0 and "JOBQ_DASHBOARD_USERS entry 1 (x)" in r.output
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")
    assert dashboard.name == "dashboard"


def test_the_command_serves_and_stops_cleanly(jobq_settings):
    import os
    import signal
    import socket
    import subprocess
    import sys

    import httpx2
    from jobq.waiting import wait_until

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "REDIS_URL": jobq_settings.redis_url, "JOBQ_PREFIX": jobq_settings.prefix,
           "JOBQ_DASHBOARD_USERS": ""}
    proc = subprocess.Popen([sys.executable, "-m", "jobq.cli", "dashboard", "--insecure-no-auth", "--port", str(port),
                             "--root-path", "/ops"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def page():
            try:
                return httpx2.get(f"http://127.0.0.1:{port}/", timeout=2)
            except httpx2.TransportError:
                return None

        r = wait_until(page, 30, message="jobq dashboard to answer")
        assert r.status_code == 200 and "Authentication is OFF" in r.text and 'href="/ops/workers"' in r.text
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=20)[0].decode()
    assert proc.returncode == 0, out
    assert f"jobq dashboard on http://127.0.0.1:{port}/ops/ (NO AUTHENTICATION)" in out
