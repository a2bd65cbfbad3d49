"""End to end: real Redis, the plugin's own QueueSpec (process execution), storage, SQLite reports."""

from __future__ import annotations

import io
from pathlib import Path

import attrs
import pytest
from jobq import InvalidPayload
from jobq.queue import QueueManager
from jobq.storage import Storage
from jobq_bugreports.store import ReportStore
from jobq_plugin_screenshot import jobq_queues
from PIL import Image

SPEC = jobq_queues()[0]
# Same handler, payload and process execution; one child process instead of five starts faster.
ONE_CHILD = attrs.evolve(SPEC, concurrency=1)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"STORAGE_URL": str(tmp_path / "objects"), "DATABASE_URL": f"sqlite:///{tmp_path / 'reports.db'}"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    for name in ("STORAGE_PUBLIC_URL", "SCREENSHOT_MAX_BYTES", "SCREENSHOT_FORMAT", "JOBQ_REPORTS_TABLE"):
        monkeypatch.delenv(name, raising=False)
    return values


def get_report(database_url: str, report_id: str) -> dict:
    store = ReportStore(database_url)
    try:
        found = store.get_report(report_id)
        assert found is not None
        return found
    finally:
        store.close()


def test_screenshot_job_end_to_end(jobq_harness, env, ui_png: bytes, tools) -> None:
    h = jobq_harness
    store = ReportStore(env["DATABASE_URL"])
    store.create_report(project_id="proj-1", title="Checkout button does nothing", report_id="bug-1")
    store.close()
    bad = {
        "bad-base64": (tools.to_url(ui_png)[:-3] + "*==", "ERR_INVALID_BASE64"),
        "truncated": (tools.to_url(ui_png[: len(ui_png) // 2]), "ERR_INVALID_IMAGE"),
        "bomb": (tools.to_url(tools.png_header_only(30_000, 30_000)), "ERR_DECOMPRESSION_BOMB"),
        "mismatch": (tools.to_url(ui_png, "image/webp"), "ERR_MIME_MISMATCH"),
        "strip": (tools.to_url(tools.encode(Image.new("RGB", (10_000, 1)))), "ERR_IMAGE_DIMENSIONS"),
        "tiff": (tools.to_url(tools.encode(Image.new("RGB", (64, 64)), "TIFF")), "ERR_INVALID_IMAGE"),
    }
    h.start(SPEC)
    for job_id, (url, _code) in bad.items():
        h.manager.add_job("screenshots", job_id, {"bugReportId": f"r-{job_id}", "projectId": "proj-1",
                                                  "screenshotData": url})
    h.manager.add_job("screenshots", "good", {"bugReportId": "bug-1", "projectId": "proj-1",
                                              "screenshotData": tools.to_url(ui_png)})

    job = h.wait("screenshots", "good", timeout=60)
    assert job.state == "completed", job.failure
    assert job.progress == "5/5" and job.attempts == 1
    result = job.result
    assert (result["width"], result["height"]) == (1920, 1080)
    storage = Storage(env["STORAGE_URL"])
    keys = storage.list("screenshots/proj-1/bug-1")
    assert keys == ["screenshots/proj-1/bug-1/original.webp", "screenshots/proj-1/bug-1/thumbnail.webp"]
    assert storage.size(keys[0]) == result["originalSize"] and storage.size(keys[1]) == result["thumbnailSize"]
    assert Image.open(io.BytesIO(storage.get(keys[1]))).size == (320, 240)
    report = get_report(env["DATABASE_URL"], "bug-1")
    assert report["title"] == "Checkout button does nothing"
    assert report["metadata"]["screenshot"]["originalUrl"] == result["originalUrl"] == storage.url(keys[0])

    body = tools.to_url(ui_png).partition(",")[2]
    for job_id, (_url, code) in bad.items():
        failed = h.wait("screenshots", job_id, timeout=30)
        assert failed.state == "failed" and failed.failure is not None
        assert failed.failure.code == code, (job_id, failed.failure.message)
        assert failed.attempts == 1, f"{job_id} was retried"
        for text in (failed.failure.message, failed.failure.stack):
            assert not any(body[i:i + 16] in text for i in range(0, len(body) - 16, 997))
        meta = get_report(env["DATABASE_URL"], f"r-{job_id}")["metadata"]["screenshot"]
        assert meta["status"] == "failed" and meta["code"] == code
    # Every object written lives under screenshots/<project>/<report>/; nothing from the failures.
    assert storage.list("screenshots") == keys


def test_bad_payloads_never_reach_redis(jobq_settings) -> None:
    with QueueManager(jobq_settings, [SPEC]) as qm:
        for job_id, data in {
            "j1": {"bugReportId": "../../x", "projectId": "p", "screenshotData": "data:image/png;base64,AAAA"},
            "j2": {"bugReportId": "b", "projectId": "p", "screenshotData": "data:image/svg+xml;base64,AAAA"},
            "j3": {"bugReportId": "b", "projectId": "p", "screenshotData": "not a data url"},
            "j4": {"bugReportId": "b", "projectId": "p\u0000", "screenshotData": "data:image/png;base64,AAAA"},
        }.items():
            with pytest.raises(InvalidPayload):
                qm.add_job("screenshots", job_id, data)
            assert qm.get_job("screenshots", job_id) is None
        assert qm.get_queue_metrics("screenshots")["waiting"] == 0


@pytest.fixture
def s3(jobq_s3) -> str:
    jobq_s3.make_bucket("shots")
    return jobq_s3.endpoint


def test_screenshot_job_against_s3(jobq_harness, env, s3: str, monkeypatch, tools) -> None:
    import boto3

    monkeypatch.setenv("STORAGE_URL", "s3://shots/tenant-a")
    monkeypatch.setenv("STORAGE_PUBLIC_URL", "https://cdn.example.test/media")
    png = tools.encode(Image.new("RGB", (1280, 800), (40, 120, 200)))
    data = {"bugReportId": "bug-9", "projectId": "proj-2", "screenshotData": tools.to_url(png)}
    job = jobq_harness.run(ONE_CHILD, data, job_id="s3-job", timeout=60)
    assert job.state == "completed", job.failure
    assert job.result["originalUrl"] == "https://cdn.example.test/media/screenshots/proj-2/bug-9/original.webp"
    listing = boto3.client("s3").list_objects_v2(Bucket="shots")["Contents"]
    sizes = {o["Key"]: o["Size"] for o in listing}
    assert sizes == {"tenant-a/screenshots/proj-2/bug-9/original.webp": job.result["originalSize"],
                     "tenant-a/screenshots/proj-2/bug-9/thumbnail.webp": job.result["thumbnailSize"]}


def test_retried_job_overwrites_its_outputs(jobq_harness, env, tmp_path: Path, monkeypatch, tools) -> None:
    """Attempt 1 uploads, then cannot reach the report store (transient); attempt 2 rewrites the same keys."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("the report database cannot be created under a file")
    database_url = f"sqlite:///{blocker / 'reports.db'}"
    monkeypatch.setenv("DATABASE_URL", database_url)
    h = jobq_harness
    h.start(ONE_CHILD)
    png = tools.encode(Image.new("RGB", (1024, 768), (200, 60, 60)))
    h.manager.add_job("screenshots", "retry-me", {"bugReportId": "bug-7", "projectId": "proj-3",
                                                  "screenshotData": tools.to_url(png)})
    first = h.wait("screenshots", "retry-me", timeout=60, states=("delayed", "completed", "failed"))
    assert first.state == "delayed" and first.attempts == 1, first.failure
    storage = Storage(env["STORAGE_URL"])
    written = storage.list("screenshots")
    assert written == ["screenshots/proj-3/bug-7/original.webp", "screenshots/proj-3/bug-7/thumbnail.webp"]
    blocker.unlink()
    job = h.wait("screenshots", "retry-me", timeout=30)
    assert job.state == "completed" and job.attempts == 2
    assert storage.list("screenshots") == written
    assert get_report(database_url, "bug-7")["metadata"]["screenshot"]["jobId"] == "retry-me"
