"""The built wheel carries templates and assets (no CDN, no build step) and the entry point."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_templates_assets_and_entry_point(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(ROOT)], check=True, timeout=110)
    wheel = next(tmp_path.glob("jobq_dashboard-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry_points = next(z.read(n).decode() for n in names if n.endswith("entry_points.txt"))
        for name in ("base.html", "overview.html", "queue.html", "job.html", "workers.html", "plugins.html",
                     "login.html", "audit.html", "confirm.html"):
            assert f"jobq_dashboard/templates/{name}" in names
        assert {"jobq_dashboard/static/dashboard.css", "jobq_dashboard/static/dashboard.js",
                "jobq_dashboard/filter.lua"} <= names
        text = "".join(z.read(n).decode() for n in names if n.startswith("jobq_dashboard/") and
                       n.endswith((".html", ".css", ".js")))
    assert "[jobq.plugins]" in entry_points and "dashboard = jobq_dashboard" in entry_points
    assert "http://" not in text and "https://" not in text  # nothing fetched from elsewhere

