"""End to end in the system's headless Chromium (Playwright): the dashboard served by uvicorn on
127.0.0.1, real workers, the real Redis. Also takes the screenshots in docs/img."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner
from dashboard_support import PASSWORDS, SPEC, DashPlugin
from jobq.cli import Ctx, cli
from jobq.plugins import PluginHost
from jobq.waiting import wait_until
from jobq_dashboard.app import create_app

pytestmark = pytest.mark.timeout(90)
DOCS_IMG = Path(__file__).resolve().parents[3] / "docs" / "img"
VIEWPORT = {"width": 1100, "height": 560}


class Server:
    def __init__(self, app: Any) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started, 10, message="dashboard server start")

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def site(jobq_settings: Any, users: Any, plugin_host: Any) -> Iterator[Server]:
    s = Server(create_app(jobq_settings, users=users, secret_key="e2e", host=plugin_host))
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.set_default_timeout(10_000)
    try:
        yield page
    finally:
        context.close()


def login(page: Any, site: Server, name: str) -> None:
    page.goto(site.url + "/")
    assert "/login" in page.url
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORDS[name])
    page.click("button[type=submit]")
    page.wait_for_url(site.url + "/")


def shot(page: Any, name: str) -> None:
    """Screenshot for docs/dashboard.md: checked to be a PNG every run, written to docs/img only with
    JOBQ_UPDATE_SCREENSHOTS=1 (so a test run leaves the tree clean)."""
    png = page.screenshot(type="png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 200_000
    if os.environ.get("JOBQ_UPDATE_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        (DOCS_IMG / name).write_bytes(png)


def test_admin_sees_counts_retries_a_failed_job_and_watches_it_complete(site, browser_page, jobq_harness,
                                                                       manager, jobq_settings, monkeypatch):
    page = browser_page
    jobq_harness.start(SPEC)
    for i in range(6):
        manager.add_job("dash", f"ok{i}", {"n": i})
    manager.add_job("dash", "boom", {"fail_first": True, "message": "upstream said 502"})
    manager.add_job("dash", "later", {"n": 9}, delay=3600)
    for i in range(6):
        jobq_harness.wait("dash", f"ok{i}")
    jobq_harness.wait("dash", "boom")

    login(page, site, "ada")
    monkeypatch.setenv("REDIS_URL", jobq_settings.redis_url)
    monkeypatch.setenv("JOBQ_PREFIX", jobq_settings.prefix)
    res = CliRunner().invoke(cli, ["stats", "--json"], obj=Ctx(PluginHost(group="jobq.none").load(
        extra=[DashPlugin()])), catch_exceptions=False)
    stats = json.loads(res.output)["queues"]["dash"]
    row = page.locator('tr[data-queue="dash"]')
    for state, n in stats.items():
        assert row.locator(f'[data-count="{state}"]').inner_text().strip() == str(n), state
    shot(page, "dashboard-overview.png")

    # counts refresh by themselves while the tab is visible
    manager.add_job("dash", "late2", {"n": 10}, delay=3600)
    wait_until(lambda: row.locator('[data-count="delayed"]').inner_text().strip() == str(stats["delayed"] + 1),
               10, message="overview refresh")

    page.click('tr[data-queue="dash"] [data-count="failed"] a')
    page.click("text=boom")
    assert page.locator("#job-state").inner_text() == "failed"
    assert "upstream said 502" in page.locator(".message").inner_text()
    shot(page, "dashboard-failed-job.png")
    page.click("button:text-is('Retry')")
    page.wait_for_selector("#job-state[data-state=completed]", timeout=15_000)
    assert "Retried job boom" in page.locator(".flash").inner_text()
    assert page.dialogs == []


def test_viewer_sees_no_actions_and_a_forged_post_is_refused(site, browser_page, jobq_harness, manager):
    page = browser_page
    jobq_harness.start(SPEC)
    manager.add_job("dash", "vf", {"always": True})
    jobq_harness.wait("dash", "vf")
    login(page, site, "vic")
    page.goto(f"{site.url}/queues/dash/jobs/vf")
    assert page.locator("#job-state").inner_text() == "failed"
    for word in ("Retry", "Remove", "Pause", "Resume"):
        assert page.locator(f"button:text-is('{word}')").count() == 0
    page.goto(f"{site.url}/queues/dash")
    assert page.locator("button:text-is('Pause')").count() == 0
    token = page.locator("input[name=csrf]").first.get_attribute("value")  # the viewer's own logout form
    r = page.request.post(f"{site.url}/queues/dash/jobs/vf/retry", form={"csrf": token})
    assert r.status == 403
    assert manager.get_job("dash", "vf").state == "failed"


def test_post_without_csrf_is_refused(site, browser_page, jobq_harness, manager):
    page = browser_page
    jobq_harness.start(SPEC)
    manager.add_job("dash", "nc", {"always": True})
    jobq_harness.wait("dash", "nc")
    login(page, site, "ada")
    r = page.request.post(f"{site.url}/queues/dash/jobs/nc/retry", form={"x": "1"})
    assert r.status == 403
    r = page.request.post(f"{site.url}/queues/dash/pause", form={"csrf": "guess"})
    assert r.status == 403
    assert manager.get_job("dash", "nc").state == "failed"
    assert manager.get_queue_metrics("dash")["paused"] == 0


def test_hostile_job_is_inert(site, browser_page, jobq_harness, manager):
    page = browser_page
    evil = "<script>alert('data')</script><img src=x onerror=\"alert('img')\"><svg onload=alert('svg')>"
    jobq_harness.start(SPEC)
    manager.add_job("dash", "evil", {"always": True, "html": evil, "message": evil, "code": "ERR_<i>x</i>"},
                    name=evil)
    jobq_harness.wait("dash", "evil")
    login(page, site, "ada")
    for path in ("/queues/dash/jobs/evil", "/queues/dash?state=failed", "/"):
        page.goto(site.url + path)
        page.wait_for_load_state("load")
    page.goto(f"{site.url}/queues/dash/jobs/evil")
    assert "<script>alert('data')</script>" in page.locator("pre.data").inner_text()
    assert evil in page.locator(".message").inner_text()
    assert page.locator("img").count() == 0 and page.locator("main script").count() == 0
    assert page.dialogs == []
    shot(page, "dashboard-hostile-job.png")


def test_pages_read_with_javascript_off(site, chromium, jobq_harness, manager):
    jobq_harness.start(SPEC)
    manager.add_job("dash", "js-off", {"n": 1}, delay=3600)
    context = chromium.new_context(java_script_enabled=False, viewport=VIEWPORT)
    try:
        page = context.new_page()
        login(page, site, "ada")
        assert page.locator('tr[data-queue="dash"] [data-count="delayed"]').inner_text().strip() == "1"
        page.goto(f"{site.url}/queues/dash?state=delayed")
        assert page.locator("text=js-off").count() == 1
        page.goto(f"{site.url}/workers")
        assert page.locator("table.workers tbody tr").count() >= 1
        shot(page, "dashboard-workers.png")
    finally:
        context.close()


def test_refresh_runs_while_visible_and_stops_while_hidden(site, browser_page, manager):
    page = browser_page
    login(page, site, "ada")
    refreshes: list[str] = []
    page.on("request", lambda r: refreshes.append(r.url) if r.resource_type == "fetch" else None)
    page.wait_for_event("request", lambda r: r.resource_type == "fetch", timeout=6000)
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
        Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    page.wait_for_load_state("networkidle")
    seen = len(refreshes)
    page.wait_for_timeout(2600)  # longer than the 1.5 s period: an absence can only be seen by waiting
    assert len(refreshes) == seen
    with page.expect_event("request", lambda r: r.resource_type == "fetch", timeout=3000):
        page.evaluate("""() => {
            Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
            Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'visible'});
            document.dispatchEvent(new Event('visibilitychange'));
        }""")
