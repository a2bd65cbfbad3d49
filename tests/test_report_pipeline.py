"""The product end to end: a report posted to the intake API with a screenshot and a replay, and a
GitHub integration; the integration job waits for the screenshot and replay jobs, so the created
issue carries both links."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import attrs
from jobq.plugins import PluginHost
from jobq_bugreports.api import create_app
from jobq_bugreports.projects import ApiKeys, load_projects
from jobq_bugreports.store import ReportStore
from jobq_bugreports.testing import serve
from jobq_plugin_integration.testing import FakeGitHub

SHARED = next((p for p in (Path(__file__).resolve().parents[2] / "shared", Path("/work/shared")) if p.is_dir()),
              Path("/work/shared"))
INGEST, READ = "pipe-ingest-0123456789abcdef", "pipe-read-0123456789abcdef"
CDN = "https://cdn.test/jobq"


def test_created_issue_carries_the_screenshot_and_replay_links(jobq_settings, tmp_path, monkeypatch):
    storage = tmp_path / "objects"
    for name, value in {"JOBQ_OUTBOUND_ALLOWLIST": "127.0.0.1", "JOBQ_INTEGRATION_ALLOW_HTTP": "1",
                        "DATABASE_URL": f"sqlite:///{tmp_path / 'reports.db'}", "STORAGE_URL": str(storage),
                        "STORAGE_PUBLIC_URL": CDN, "REDIS_URL": jobq_settings.redis_url,
                        "JOBQ_PREFIX": jobq_settings.prefix}.items():
        monkeypatch.setenv(name, value)
    settings = attrs.evolve(jobq_settings, storage_url=str(storage), storage_public_url=CDN)
    host = PluginHost().load()
    specs = [host.specs[q] for q in ("screenshots", "replays", "integrations")]
    png = (SHARED / "corpora/images/valid/hopper.png").read_bytes()
    events = json.loads((SHARED / "corpora/replays/rrweb-player-demoit-2018.json").read_text())
    body = {"title": "Checkout broken", "screenshot": "data:image/png;base64," + base64.b64encode(png).decode(),
            "sessionReplay": {"events": events}}
    from jobq.testing import Harness

    with FakeGitHub() as github:
        projects = tmp_path / "projects.json"
        projects.write_text(json.dumps({"p1": {"integrations": [{
            "platform": "github", "credentials": {"token": github.token},
            "config": {"owner": "octo", "repo": "app", "apiUrl": github.url}}]}}))
        harness = Harness(settings)
        with ReportStore.from_env() as store:
            app = create_app(settings=settings, store=store, api_keys=ApiKeys({"p1": INGEST}),
                             read_keys=ApiKeys({"p1": READ}), projects=load_projects(projects), specs=specs)
            try:
                with serve(app) as client:
                    resp = client.post("/api/v1/reports", json=body, headers={"X-API-Key": INGEST})
                    assert resp.status_code == 201, resp.text
                    rid = resp.json()["id"]
                    jobs = resp.json()["jobs"]
                    m = harness.manager
                    integration = jobs["integrations"]["github"]
                    assert m.get_job("integrations", integration).state == "blocked"
                    harness.start(*specs)
                    done = harness.wait("integrations", integration, timeout=120)
                    assert done.state == "completed", done.failure
                    shot = m.get_job("screenshots", jobs["screenshots"])
                    replay = m.get_job("replays", jobs["replays"])
                    assert shot.state == replay.state == "completed"
                    assert done.started_at >= max(shot.finished_at, replay.finished_at)
            finally:
                harness.close()
        issue = github.issues["octo/app"][1]
    assert f"{CDN}/screenshots/p1/{rid}/" in issue["body"]
    assert f"{CDN}/replays/p1/{rid}/" in issue["body"]
    assert time.time() - done.finished_at < 300
