"""capture.py: the payload class and the handler, run in-process against real storage and SQLite."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from jobq import InvalidPayload, JobContext
from jobq.serialization import structure_payload
from jobq.storage import Storage
from jobq_bugreports.store import ReportStore
from jobq_plugin_screenshot import ScreenshotJob, jobq_queues, process_screenshot
from jobq_plugin_screenshot.errors import ScreenshotRejected
from PIL import Image


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    paths = {"storage": tmp_path / "objects", "db": tmp_path / "reports.db"}
    monkeypatch.setenv("STORAGE_URL", str(paths["storage"]))
    monkeypatch.delenv("STORAGE_PUBLIC_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{paths['db']}")
    for name in ("SCREENSHOT_MAX_BYTES", "SCREENSHOT_FORMAT", "SCREENSHOT_MAX_PIXELS", "JOBQ_REPORTS_TABLE"):
        monkeypatch.delenv(name, raising=False)
    return paths


def run(data: dict, job_id: str = "shot-1") -> tuple[dict, list]:
    steps: list = []
    payload = structure_payload(data, ScreenshotJob)
    ctx = JobContext(id=job_id, queue="screenshots", name="", attempt=1, created_at=0.0, token="t",
                     data=payload, progress=steps.append)
    return process_screenshot(ctx), steps


def report(env: dict[str, Path], report_id: str) -> dict | None:
    store = ReportStore(f"sqlite:///{env['db']}")
    try:
        return store.get_report(report_id)
    finally:
        store.close()


def test_spec_matches_the_issue() -> None:
    (spec,) = jobq_queues()
    assert (spec.name, spec.concurrency, spec.retries, spec.timeout) == ("screenshots", 5, 3, 120)
    assert spec.payload is ScreenshotJob and spec.handler is process_screenshot
    assert spec.execution == "process"


@pytest.mark.parametrize(("data", "field"), [
    ({"bugReportId": "../etc", "projectId": "p1", "screenshotData": "data:image/png;base64,AAAA"}, "bugReportId"),
    ({"bugReportId": "b1", "projectId": "a/b", "screenshotData": "data:image/png;base64,AAAA"}, "projectId"),
    ({"bugReportId": "b1", "projectId": "p" * 65, "screenshotData": "data:image/png;base64,AAAA"}, "projectId"),
    ({"bugReportId": "b\x00", "projectId": "p1", "screenshotData": "data:image/png;base64,AAAA"}, "bugReportId"),
    ({"bugReportId": "..%2fx", "projectId": "p1", "screenshotData": "data:image/png;base64,AAAA"}, "bugReportId"),
    ({"bugReportId": "\uff0e\uff0e", "projectId": "p1", "screenshotData": "data:image/png;base64,AAAA"},
     "bugReportId"),
    ({"bugReportId": "b" * 300, "projectId": "p1", "screenshotData": "data:image/png;base64,AAAA"}, "bugReportId"),
    ({"bugReportId": "b1", "projectId": "p1", "screenshotData": "https://x/y.png"}, "screenshotData"),
    ({"bugReportId": "b1", "projectId": "p1", "screenshotData": "data:image/gif;base64,R0lG"}, "screenshotData"),
    ({"bugReportId": "b1", "projectId": "p1"}, "screenshotData"),
    ({"bugReportId": "b1", "projectId": "p1", "screenshotData": "data:image/png;base64,AAAA", "x": 1}, "x"),
])
def test_bad_payloads_are_refused_at_enqueue(data: dict, field: str) -> None:
    with pytest.raises(InvalidPayload) as info:
        structure_payload(data, ScreenshotJob)
    assert field in str(info.value)
    assert "etc" not in str(info.value) and "pppp" not in str(info.value)


def test_oversized_payload_is_refused_at_enqueue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCREENSHOT_MAX_BYTES", "3000")
    data = {"bugReportId": "b1", "projectId": "p1", "screenshotData": "data:image/png;base64," + "A" * 8000}
    with pytest.raises(InvalidPayload, match="SCREENSHOT_MAX_BYTES"):
        structure_payload(data, ScreenshotJob)


def test_repr_never_shows_the_image() -> None:
    job = ScreenshotJob(bug_report_id="b1", project_id="p1", screenshot_data="data:image/png;base64," + "Q" * 5000)
    assert "QQQQ" not in repr(job) and "5022 chars" in repr(job)


def test_pipeline_uploads_records_and_reports_progress(env, ui_png: bytes, tools) -> None:
    result, steps = run({"bugReportId": "bug-1", "projectId": "proj-1", "screenshotData": tools.to_url(ui_png)})
    assert steps == ["1/5", "2/5", "3/5", "4/5", "5/5"]
    assert set(result) == {"originalUrl", "thumbnailUrl", "originalSize", "thumbnailSize", "width", "height"}
    assert (result["width"], result["height"]) == (1920, 1080)
    storage = Storage(str(env["storage"]))
    assert storage.list("screenshots/proj-1/bug-1") == [
        "screenshots/proj-1/bug-1/original.webp", "screenshots/proj-1/bug-1/thumbnail.webp"]
    original = storage.get("screenshots/proj-1/bug-1/original.webp")
    assert len(original) == result["originalSize"]
    assert result["originalUrl"] == storage.url("screenshots/proj-1/bug-1/original.webp")
    thumb = Image.open(io.BytesIO(storage.get("screenshots/proj-1/bug-1/thumbnail.webp")))
    assert thumb.size == (320, 240)
    assert storage.size("screenshots/proj-1/bug-1/thumbnail.webp") == result["thumbnailSize"]
    meta = report(env, "bug-1")["metadata"]["screenshot"]
    assert meta["status"] == "ready" and meta["jobId"] == "shot-1"
    assert {k: meta[k] for k in result} == result
    assert meta["source"] == {"format": "PNG", "width": 1920, "height": 1080}


def test_retry_overwrites_its_own_outputs(env, tools, monkeypatch: pytest.MonkeyPatch) -> None:
    first = tools.to_url(tools.encode(Image.new("RGB", (800, 600), "red")))
    second = tools.to_url(tools.encode(Image.new("RGB", (640, 480), "blue")))
    data = {"bugReportId": "bug-2", "projectId": "proj-1"}
    run({**data, "screenshotData": first})
    result, _ = run({**data, "screenshotData": second}, job_id="shot-1")
    storage = Storage(str(env["storage"]))
    assert storage.list("screenshots/proj-1") == [
        "screenshots/proj-1/bug-2/original.webp", "screenshots/proj-1/bug-2/thumbnail.webp"]
    assert Image.open(io.BytesIO(storage.get("screenshots/proj-1/bug-2/original.webp"))).size == (640, 480)
    assert report(env, "bug-2")["metadata"]["screenshot"]["width"] == 640
    monkeypatch.setenv("SCREENSHOT_FORMAT", "jpeg")
    result, _ = run({**data, "screenshotData": second})
    assert result["originalUrl"].endswith("/bug-2/original.jpg")


def test_bad_image_fails_without_uploading_and_is_recorded(env, tools) -> None:
    data = tools.encode(Image.new("RGB", (300, 200), "red"))
    steps: list = []
    payload = ScreenshotJob(bug_report_id="bug-3", project_id="proj-1", screenshot_data=tools.to_url(data[:150]))
    ctx = JobContext(id="shot-3", queue="screenshots", name="", attempt=1, created_at=0.0, token="t",
                     data=payload, progress=steps.append)
    with pytest.raises(ScreenshotRejected) as info:
        process_screenshot(ctx)
    assert info.value.code == "ERR_INVALID_IMAGE" and info.value.retryable is False
    assert steps == ["1/5"]
    assert Storage(str(env["storage"])).list("screenshots") == []
    meta = report(env, "bug-3")["metadata"]["screenshot"]
    assert meta == {"status": "failed", "code": "ERR_INVALID_IMAGE", "message": str(info.value), "jobId": "shot-3"}


def test_report_of_another_project_keeps_nothing(env, tools) -> None:
    store = ReportStore(f"sqlite:///{env['db']}")
    store.create_report(project_id="proj-A", title="t", report_id="bug-4")
    store.close()
    with pytest.raises(Exception) as info:
        run({"bugReportId": "bug-4", "projectId": "proj-B",
             "screenshotData": tools.to_url(tools.encode(Image.new("RGB", (50, 50))))})
    assert getattr(info.value, "retryable", True) is False
    assert Storage(str(env["storage"])).list("screenshots") == []
    assert "screenshot" not in report(env, "bug-4")["metadata"]
