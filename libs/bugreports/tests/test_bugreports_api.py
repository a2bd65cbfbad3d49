"""The intake API against real Redis and real SQLite/PostgreSQL stores."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import attrs
import pytest
from jobq import QueueSpec, Settings
from jobq.queue import QueueManager
from jobq_bugreports.api import create_app, intake_specs
from jobq_bugreports.intake import fallback_specs
from jobq_bugreports.projects import ApiKeys, parse_projects
from jobq_bugreports.store import ReportStore

pytestmark = pytest.mark.timeout(60)

CORPORA = Path("/work/shared/corpora")
KEY1 = "key-one-0123456789abcdef"
KEY2 = "key-two-0123456789abcdef"
READ1 = "read-one-0123456789abcdef"
READ2 = "read-two-0123456789abcdef"
H1 = {"X-API-Key": KEY1}
H2 = {"X-API-Key": KEY2}
R1 = {"X-API-Key": READ1}
R2 = {"X-API-Key": READ2}
RAW = {**H1, "Content-Type": "application/json"}
PROJECTS = {
    "proj-1": {
        "integrations": [
            {"platform": "github", "credentials": {"token": "ghp_SECRET_TOKEN"}, "config": {"repo": "a/b"}},
            {"platform": "slack", "name": "slack_ops", "credentials": {"webhook": "https://hooks.example/x"}},
        ],
        "notifications": [{"type": "email", "recipients": ["oncall@example.test"]}],
    }
}


def screenshot() -> str:
    raw = (CORPORA / "images/valid/hopper.png").read_bytes()
    return "data:image/png;base64," + base64.b64encode(raw).decode()


def replay_events() -> list[dict[str, Any]]:
    return json.loads((CORPORA / "replays/rrweb-player-demoit-2018.json").read_text())


@pytest.fixture
def make_client(served):
    """``make_client(settings, store, **create_app_kwargs)``: a client of the app served by uvicorn."""

    def make(settings: Settings, store: ReportStore, **kw: Any):
        kw.setdefault("projects", {})
        kw.setdefault("specs", fallback_specs())
        app = create_app(settings=settings, store=store, api_keys=ApiKeys({"proj-1": KEY1, "proj-2": KEY2}),
                         read_keys=ApiKeys({"proj-1": READ1, "proj-2": READ2}), **kw)
        return served(app)

    return make


@pytest.fixture
def sqlite_store(tmp_path: Path) -> ReportStore:
    s = ReportStore(f"sqlite:///{tmp_path / 'api.db'}")
    yield s
    s.close()


def test_create_enqueues_screenshot_and_replay(make_client, jobq_settings, any_store) -> None:
    body = {"title": "Checkout broken", "description": "button does nothing", "severity": "high",
            "url": "https://shop.example/checkout", "screenshot": screenshot(),
            "sessionReplay": {"events": replay_events()}}
    with make_client(jobq_settings, any_store) as client:
        resp = client.post("/api/v1/reports", json=body, headers=H1)
    assert resp.status_code == 201, resp.text
    report = resp.json()
    rid = report["id"]
    assert report["jobs"] == {"screenshots": f"screenshot-{rid}", "replays": f"replay-{rid}"}
    assert report["title"] == "Checkout broken" and report["projectId"] == "proj-1"
    assert report["severity"] == "high" and report["metadata"] == {}
    assert resp.headers["location"] == f"/api/v1/reports/{rid}"
    stored = any_store.get_report(rid)
    assert stored["jobs"] == report["jobs"] and stored["title"] == "Checkout broken"
    with QueueManager(jobq_settings) as qm:
        shot = qm.get_job("screenshots", f"screenshot-{rid}")
        rep = qm.get_job("replays", f"replay-{rid}")
        assert shot.state == "waiting" and rep.state == "waiting"
        # Large payloads are claim-checked to storage; the stored payload is what the worker gets.
        shot_data = shot.data or json.loads(qm.storage.get(shot.payload_ref))
        rep_data = rep.data or json.loads(qm.storage.get(rep.payload_ref))
    assert shot_data == {"bugReportId": rid, "projectId": "proj-1", "screenshotData": body["screenshot"]}
    events = body["sessionReplay"]["events"]
    assert rep_data == {"bugReportId": rid, "projectId": "proj-1", "replayData": events}


def test_the_project_replay_privacy_goes_before_the_events(make_client, jobq_settings, sqlite_store) -> None:
    """The worker masks events as it streams them, so ``privacy`` must precede ``replayData`` in the payload."""
    projects = parse_projects({"proj-1": {"replay": {"allowInputTypes": ["range"]}}})
    with make_client(jobq_settings, sqlite_store, projects=projects) as client:
        resp = client.post("/api/v1/reports", headers=H1,
                           json={"title": "t", "sessionReplay": {"events": replay_events()}})
        other = client.post("/api/v1/reports", headers=H2,
                            json={"title": "t", "sessionReplay": {"events": replay_events()}})
    assert resp.status_code == other.status_code == 201, resp.text
    with QueueManager(jobq_settings) as qm:
        datas = []
        for r in (resp, other):
            job = qm.get_job("replays", f"replay-{r.json()['id']}")
            datas.append(job.data or json.loads(qm.storage.get(job.payload_ref)))
    assert list(datas[0]) == ["bugReportId", "projectId", "privacy", "replayData"]
    assert datas[0]["privacy"] == {"allowInputTypes": ["range"]}
    assert list(datas[1]) == ["bugReportId", "projectId", "replayData"]  # proj-2: no setting, all masked


def test_create_without_attachments_enqueues_nothing(make_client, jobq_settings, sqlite_store) -> None:
    with make_client(jobq_settings, sqlite_store) as client:
        body = {"title": "Typo", "sessionReplay": {"events": []}}
        resp = client.post("/api/v1/reports", headers=H1, json=body)
        assert resp.status_code == 201
        assert resp.json()["jobs"] == {}
        assert resp.json()["severity"] == "medium" and resp.json()["description"] == ""
        shown = client.get(f"/api/v1/reports/{resp.json()['id']}", headers=R1).json()
    assert shown["jobs"] == {} and shown["title"] == "Typo"


def test_project_integrations_and_notifications(make_client, jobq_settings, sqlite_store) -> None:
    projects = parse_projects(PROJECTS)
    with make_client(jobq_settings, sqlite_store, projects=projects) as client:
        resp = client.post("/api/v1/reports", headers=H1, json={
            "title": "Crash", "severity": "critical", "url": "https://app.example/"})
        other = client.post("/api/v1/reports", headers=H2, json={"title": "Other project"})
    assert resp.status_code == 201
    assert "SECRET" not in resp.text and "hooks.example" not in resp.text
    rid = resp.json()["id"]
    assert resp.json()["jobs"] == {
        "integrations": {"github": f"integration-github-{rid}", "slack_ops": f"integration-slack_ops-{rid}"},
        "notifications": {"email": f"notification-email-{rid}"},
    }
    assert other.json()["jobs"] == {}
    summary = {"title": "Crash", "description": "", "severity": "critical", "url": "https://app.example/"}
    with QueueManager(jobq_settings) as qm:
        gh = qm.get_job("integrations", f"integration-github-{rid}")
        note = qm.get_job("notifications", f"notification-email-{rid}")
        raw_hash = qm.redis.hgetall(qm.keys("integrations").job(f"integration-github-{rid}"))
    assert gh.data["platform"] == "github" and gh.data["config"] == {"repo": "a/b"}
    assert gh.data["report"] == {**summary, "screenshotUrl": None, "replayUrl": None}
    # Credentials are a secret field: kept out of the job's data (and erased when the job ends).
    assert gh.data["credentials"] != {"token": "ghp_SECRET_TOKEN"}
    assert b"ghp_SECRET_TOKEN" not in raw_hash[b"data"]
    # Recipients are a secret field too (webhook URLs carry tokens).
    assert note.data == {"bugReportId": rid, "projectId": "proj-1", "type": "email",
                         "recipients": "[redacted]", "event": "created", "report": summary}


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong-key-0123456789"}, {"X-API-Key": ""}])
def test_missing_or_wrong_key_is_401(make_client, jobq_settings, sqlite_store, headers, row_count) -> None:
    with make_client(jobq_settings, sqlite_store) as client:
        post = client.post("/api/v1/reports", json={"title": "x"}, headers=headers)
        get = client.get("/api/v1/reports/abc", headers=headers)
    assert post.status_code == 401 and get.status_code == 401
    assert post.json()["error"]["code"] == "ERR_UNAUTHORIZED"
    assert row_count(sqlite_store) == 0


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, ["title"]),
        ({"title": "  "}, ["title"]),
        ({"title": "t", "severity": "urgent", "url": 5}, ["severity", "url"]),
        ({"title": "t", "screenshot": "data:text/html;base64,AAAA"}, ["screenshot"]),
        ({"title": "t", "screenshot": "data:image/png;base64,"}, ["screenshot"]),
        ({"title": "t", "sessionReplay": {"events": {"a": 1}}}, ["sessionReplay.events"]),
        ({"title": "t", "sessionReplay": {"events": [{"type": 4}, 3]}}, ["sessionReplay.events[1]"]),
        ({"title": "t", "sessionReplay": {"events": [], "extra": 1}}, ["sessionReplay.extra"]),
        ({"title": "t", "sessionReplay": [1]}, ["sessionReplay"]),
        ({"title": "t", "projectId": "proj-2"}, ["projectId"]),
        ([1, 2], ["(body)"]),
    ],
)
def test_invalid_body_is_400_naming_fields(make_client, jobq_settings, sqlite_store, body, fields, row_count):
    with make_client(jobq_settings, sqlite_store) as client:
        resp = client.post("/api/v1/reports", json=body, headers=H1)
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert err["code"] == "ERR_INVALID_REQUEST"
    assert [e["field"] for e in err["errors"]] == fields
    assert all(f in err["message"] for f in fields)
    assert row_count(sqlite_store) == 0


def test_malformed_json_and_media_type(make_client, jobq_settings, sqlite_store) -> None:
    with make_client(jobq_settings, sqlite_store) as client:
        bad = client.post("/api/v1/reports", content=b'{"title": ', headers=RAW)
        deep = client.post("/api/v1/reports", content=b"[" * 100_000 + b"]" * 100_000, headers=RAW)
        form = client.post("/api/v1/reports", data={"title": "x"}, headers=H1)
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]
    assert deep.status_code == 400 and deep.json()["error"]["errors"][0]["field"] == "(body)"
    assert form.status_code == 415


def test_body_over_limit_is_413(make_client, jobq_settings, sqlite_store, row_count) -> None:
    body = json.dumps({"title": "big", "description": "x" * 5000}).encode()
    with make_client(jobq_settings, sqlite_store, max_body=4096) as client:
        declared = client.post("/api/v1/reports", content=body, headers=RAW)

        def chunks():  # no Content-Length: the limit must hold while streaming
            for i in range(0, len(body), 1000):
                yield body[i:i + 1000]

        streamed = client.post("/api/v1/reports", content=chunks(), headers=RAW)
        small = client.post("/api/v1/reports", json={"title": "small"}, headers=H1)
    assert declared.status_code == 413 and streamed.status_code == 413
    assert streamed.json()["error"] == {"code": "ERR_BODY_TOO_LARGE", "limit": 4096,
                                        "message": "body is over the 4096-byte limit"}
    assert small.status_code == 201
    assert row_count(sqlite_store) == 1


def test_redis_down_is_503_and_creates_nothing(make_client, jobq_settings, any_store, row_count) -> None:
    down = attrs.evolve(jobq_settings, redis_url="redis://127.0.0.1:1/0", socket_timeout=2.0)
    with make_client(down, any_store) as client:
        resp = client.post("/api/v1/reports", headers=H1, json={"title": "t", "screenshot": screenshot()})
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "ERR_QUEUE_UNAVAILABLE"
    assert resp.headers["retry-after"] == "5"
    assert row_count(any_store) == 0


def test_full_redis_is_503_and_creates_nothing(make_client, jobq_settings, jobq_redis_server, sqlite_store,
                                                row_count) -> None:
    full = attrs.evolve(jobq_settings, redis_url=jobq_redis_server.url)
    jobq_redis_server.fill()
    keys = sorted(jobq_redis_server.client.keys("*"))
    with make_client(full, sqlite_store) as client:
        resp = client.post("/api/v1/reports", headers=H1, json={"title": "t", "screenshot": screenshot()})
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"]["code"] == "ERR_QUEUE_UNAVAILABLE" and "QueueFull" in resp.json()["error"]["message"]
    assert row_count(sqlite_store) == 0
    assert sorted(jobq_redis_server.client.keys("*")) == keys


def test_enqueue_failing_midway_rolls_back_everything(
    make_client, jobq_settings, sqlite_store, tmp_path, row_count
) -> None:
    """The screenshot job is in Redis when the replay's payload upload fails: the report is rolled
    back and the screenshot job taken back."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the payload storage folder should be")
    settings = attrs.evolve(jobq_settings, storage_url=str(blocker / "store"), claim_check_bytes=50_000)
    small_shot = "data:image/png;base64," + base64.b64encode(
        (CORPORA / "images/valid/1_trns.png").read_bytes()).decode()
    with make_client(settings, sqlite_store) as client:
        resp = client.post("/api/v1/reports", headers=H1, json={
            "title": "t", "screenshot": small_shot, "sessionReplay": {"events": replay_events()}})
    assert resp.status_code == 503, resp.text
    assert row_count(sqlite_store) == 0
    with QueueManager(jobq_settings) as qm:
        assert qm.get_queue_metrics("screenshots")["waiting"] == 0
        assert qm.list_jobs("screenshots", "failed") == []


@attrs.frozen(kw_only=True)
class StrictShot:
    bug_report_id: str
    project_id: str
    screenshot_data: str = attrs.field(validator=attrs.validators.max_len(100))


def test_plugin_payload_class_refusal_is_400_with_body_field(
    make_client, jobq_settings, sqlite_store, row_count
) -> None:
    specs = [QueueSpec(name="screenshots", handler=lambda job: None, payload=StrictShot),
             *[s for s in fallback_specs() if s.name != "screenshots"]]
    with make_client(jobq_settings, sqlite_store, specs=specs) as client:
        resp = client.post("/api/v1/reports", headers=H1, json={
            "title": "t", "screenshot": screenshot(), "sessionReplay": {"events": [{"type": 4}]}})
    assert resp.status_code == 400, resp.text
    assert [e["field"] for e in resp.json()["error"]["errors"]] == ["screenshot"]
    assert row_count(sqlite_store) == 0
    with QueueManager(jobq_settings) as qm:
        assert qm.get_queue_metrics("replays")["waiting"] == 0


def fake_screenshot_worker(store: ReportStore):
    """Stands in for the screenshot plugin: records its URLs on the report and returns them."""

    def handle(job) -> dict[str, Any]:
        urls = {"originalUrl": f"file:///s/{job.data['bugReportId']}/original.png",
                "thumbnailUrl": f"https://cdn.example/{job.data['bugReportId']}/thumb.png"}
        store.record(job.data["bugReportId"], job.data["projectId"], "screenshot", urls)
        return urls

    return QueueSpec(name="screenshots", handler=handle, retries=0)


def failing_replay_worker():
    from jobq import UnrecoverableError

    def handle(job) -> None:
        raise UnrecoverableError("no events to chunk", code="ERR_EMPTY_REPLAY")

    return QueueSpec(name="replays", handler=handle, retries=0)


def test_get_shows_job_states_results_and_failures(make_client, jobq_harness, any_store) -> None:
    h = jobq_harness
    with make_client(h.settings, any_store) as client:
        resp = client.post("/api/v1/reports", headers=H1, json={
            "title": "t", "screenshot": screenshot(), "sessionReplay": {"events": [{"type": 4}]}})
        assert resp.status_code == 201
        rid = resp.json()["id"]
        waiting = client.get(f"/api/v1/reports/{rid}", headers=R1).json()
        assert waiting["jobs"]["screenshots"]["state"] == "waiting"
        h.start(fake_screenshot_worker(any_store), failing_replay_worker())
        h.wait("screenshots", f"screenshot-{rid}")
        h.wait("replays", f"replay-{rid}")
        shown = client.get(f"/api/v1/reports/{rid}", headers=R1)
        hidden = client.get(f"/api/v1/reports/{rid}", headers=R2)
        missing = client.get("/api/v1/reports/nope", headers=R1)
    assert shown.status_code == 200
    report = shown.json()
    shot = report["jobs"]["screenshots"]
    assert shot["state"] == "completed" and shot["id"] == f"screenshot-{rid}"
    # Storage paths that are not public URLs are never shown, in results or metadata.
    assert shot["result"]["originalUrl"] is None
    assert shot["result"]["thumbnailUrl"] == f"https://cdn.example/{rid}/thumb.png"
    assert shot["attempts"] == 1 and shot["finishedAt"].endswith("Z")
    assert report["metadata"]["screenshot"] == {"originalUrl": None,
                                                "thumbnailUrl": f"https://cdn.example/{rid}/thumb.png"}
    assert "file:" not in shown.text
    replay = report["jobs"]["replays"]
    assert replay["state"] == "failed" and replay["failure"]["code"] == "ERR_EMPTY_REPLAY"
    assert "stack" not in replay["failure"]
    assert hidden.status_code == 404 and missing.status_code == 404


def test_get_when_redis_is_gone_shows_unknown_jobs(make_client, jobq_settings, sqlite_store) -> None:
    with make_client(jobq_settings, sqlite_store) as client:
        created = client.post("/api/v1/reports", headers=H1, json={"title": "t", "screenshot": screenshot()})
        rid = created.json()["id"]
    down = attrs.evolve(jobq_settings, redis_url="redis://127.0.0.1:1/0")
    with make_client(down, sqlite_store) as client:
        resp = client.get(f"/api/v1/reports/{rid}", headers=R1)
        health = client.get("/health")
    assert resp.status_code == 200
    assert resp.json()["jobs"]["screenshots"] == {"id": f"screenshot-{rid}", "queue": "screenshots",
                                                  "state": "unknown"}
    assert health.status_code == 503


def test_health_and_unknown_routes(make_client, jobq_settings, sqlite_store) -> None:
    with make_client(jobq_settings, sqlite_store) as client:
        resp = client.get("/health")
        nowhere = client.get("/api/v2/reports", headers=H1)
        wrong_method = client.put("/api/v1/reports/x", headers=H1)
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}
    assert nowhere.status_code == 404 and nowhere.json()["error"]["code"] == "ERR_NOT_FOUND"
    assert wrong_method.status_code == 405 and "GET" in wrong_method.headers["allow"]


def test_intake_specs_keep_credentials_secret() -> None:
    specs = {s.name: s for s in intake_specs()}
    assert set(specs) == {"screenshots", "replays", "integrations", "notifications"}
    assert "credentials" in specs["integrations"].secret_fields


@attrs.frozen(kw_only=True)
class RepoConfig:
    repo: str


@attrs.frozen(kw_only=True)
class StrictIntegration:
    bug_report_id: str
    project_id: str
    platform: str
    credentials: dict
    config: RepoConfig
    report: dict


def test_misconfigured_project_stops_start_up(jobq_settings, sqlite_store) -> None:
    from jobq import ConfigError

    specs = [QueueSpec(name="integrations", handler=lambda job: None, payload=StrictIntegration),
             *[s for s in fallback_specs() if s.name != "integrations"]]
    bad = parse_projects({"proj-1": {"integrations": [
        {"platform": "github", "credentials": {"token": "ghp_SECRET"}, "config": {"owner": "a"}}]}})
    with pytest.raises(ConfigError) as exc:
        create_app(settings=jobq_settings, store=sqlite_store, api_keys=ApiKeys({"proj-1": KEY1}),
                   projects=bad, specs=specs)
    assert "proj-1" in str(exc.value) and "'github'" in str(exc.value) and "config" in str(exc.value)
    assert "SECRET" not in str(exc.value)
    good = parse_projects({"proj-1": {"integrations": [{"platform": "github", "config": {"repo": "a/b"}}]}})
    app = create_app(settings=jobq_settings, store=sqlite_store, api_keys=ApiKeys({"proj-1": KEY1}),
                     projects=good, specs=specs)
    app.state.intake.manager.shutdown()


def test_end_to_end_with_the_screenshot_plugin(make_client, jobq_harness, monkeypatch, tmp_path) -> None:
    """POST a real PNG, let the installed screenshot plugin's worker process it, GET the URLs."""
    plugin = pytest.importorskip("jobq_plugin_screenshot")
    db = f"sqlite:///{tmp_path / 'e2e.db'}"
    monkeypatch.setenv("DATABASE_URL", db)
    monkeypatch.setenv("JOBQ_REPORTS_TABLE", "e2e_reports")
    monkeypatch.setenv("STORAGE_URL", jobq_harness.settings.storage_url)
    spec = plugin.jobq_queues()[0]
    specs = [spec, *[s for s in fallback_specs() if s.name != "screenshots"]]
    with ReportStore(db, table="e2e_reports") as store, make_client(jobq_harness.settings, store,
                                                                    specs=specs) as client:
        resp = client.post("/api/v1/reports", headers=H1, json={"title": "t", "screenshot": screenshot()})
        assert resp.status_code == 201, resp.text
        rid = resp.json()["id"]
        jobq_harness.start(spec)
        job = jobq_harness.wait("screenshots", f"screenshot-{rid}", timeout=45)
        assert job.state == "completed", job.failure
        shown = client.get(f"/api/v1/reports/{rid}", headers=R1).json()
    shot = shown["jobs"]["screenshots"]
    assert shot["state"] == "completed"
    # The worker stored the images on a local folder: their file: URLs stay internal.
    assert job.result["originalUrl"].startswith("file:")
    assert shot["result"]["width"] == 128 and shot["result"]["originalUrl"] is None
    assert shown["metadata"]["screenshot"]["originalUrl"] is None
    assert shown["title"] == "t"


def test_delete_erases_the_report_with_a_read_key(make_client, jobq_settings, any_store) -> None:
    body = {"title": "to be erased", "screenshot": screenshot()}
    with make_client(jobq_settings, any_store) as client:
        rid = client.post("/api/v1/reports", json=body, headers=H1).json()["id"]
        with QueueManager(jobq_settings) as qm:
            storage = qm.storage
            storage.put(f"screenshots/proj-1/{rid}/original.webp", b"x")
            assert qm.get_job("screenshots", f"screenshot-{rid}") is not None
        assert client.delete(f"/api/v1/reports/{rid}", headers=H1).status_code == 403  # an ingest key
        assert client.delete(f"/api/v1/reports/{rid}", headers={"X-API-Key": READ2}).status_code == 404
        resp = client.delete(f"/api/v1/reports/{rid}", headers=R1)
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"id": rid, "projectId": "proj-1", "erased": True, "jobs": 1, "objects": 1,
                               "externalIssues": []}
        assert client.get(f"/api/v1/reports/{rid}", headers=R1).status_code == 404
        assert client.delete(f"/api/v1/reports/{rid}", headers=R1).status_code == 404
    with QueueManager(jobq_settings) as qm:
        assert qm.get_job("screenshots", f"screenshot-{rid}") is None
    assert not storage.list(f"screenshots/proj-1/{rid}") and any_store.get_report(rid) is None
