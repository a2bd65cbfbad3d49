"""``jobq api`` is registered through the plugin hook and serves the API from the environment."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.timeout(60)

JOBQ = str(Path(sys.executable).with_name("jobq"))
KEY = "cli-key-0123456789abcdef"
READ_KEY = "cli-read-0123456789abcdef"


def test_api_command_is_listed() -> None:
    out = subprocess.run([JOBQ, "--help"], capture_output=True, text=True, timeout=30, check=True).stdout
    assert re.search(r"^\s+api\s+Serve the bug-report intake API", out, re.M)
    sub = subprocess.run([JOBQ, "api", "--help"], capture_output=True, text=True, timeout=30, check=True)
    sub = sub.stdout
    assert "--host" in sub and "--port" in sub


def test_api_without_keys_refuses_to_start(tmp_path: Path) -> None:
    env = {**os.environ, "JOBQ_API_KEYS": "", "DATABASE_URL": f"sqlite:///{tmp_path}/r.db"}
    proc = subprocess.run([JOBQ, "api", "--port", "0"], capture_output=True, text=True, timeout=30, env=env)
    assert proc.returncode != 0
    assert "JOBQ_API_KEYS is empty" in proc.stderr


def test_api_serves_reports(api_process, jobq_settings, tmp_path: Path) -> None:
    projects = tmp_path / "projects.toml"
    projects.write_text('[[proj-9.notifications]]\ntype = "email"\nrecipients = ["a@example.test"]\n')
    env = {
        **os.environ, "JOBQ_API_KEYS": f"proj-9:{KEY}", "JOBQ_API_READ_KEYS": f"proj-9:{READ_KEY}",
        "JOBQ_PROJECTS_FILE": str(projects), "DATABASE_URL": f"sqlite:///{tmp_path}/reports.db",
        "REDIS_URL": jobq_settings.redis_url, "JOBQ_PREFIX": jobq_settings.prefix,
        "STORAGE_URL": str(tmp_path / "storage"),
    }
    with api_process(env) as (proc, base, _lines):
        with httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=10) as client:
            created = client.post("/api/v1/reports", json={"title": "From the CLI"})
            assert created.status_code == 201, created.text
            rid = created.json()["id"]
            assert created.json()["jobs"] == {"notifications": {"email": f"notification-email-{rid}"}}
            shown = client.get(f"/api/v1/reports/{rid}", headers={"X-API-Key": READ_KEY})
            assert shown.json()["jobs"]["notifications"]["email"]["state"] == "waiting"
            assert "a@example.test" not in shown.text  # recipients stay in the job, never shown
            assert client.get(f"/api/v1/reports/{rid}").status_code == 403  # an ingest key cannot read
            assert client.get(f"/api/v1/reports/{rid}", headers={"X-API-Key": "nope"}).status_code == 401
        proc.terminate()
        code = proc.wait(timeout=15)
    assert code == 0  # a graceful SIGTERM shutdown exits 0
