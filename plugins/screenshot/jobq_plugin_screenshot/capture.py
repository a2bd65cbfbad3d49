"""The ``screenshots`` job: its payload, its handler, where the images go and what the report records.

Pipeline, reported as progress ``1/5`` … ``5/5``: decode the data URL → optimized image →
thumbnail → upload both → record the outcome on the bug report (metadata key ``screenshot``).
Object keys are built from validated ids only and are the same on every attempt, so a retried
job overwrites its own outputs instead of leaving copies.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
from jobq import JobContext, Settings, UnrecoverableError
from jobq.storage import Storage, safe_key
from jobq_bugreports.store import ReportStore

from . import imaging, settings
from .errors import InvalidScreenshotField, ScreenshotRejected

log = logging.getLogger(__name__)

QUEUE = "screenshots"
METADATA_KEY = "screenshot"
KEY_ROOT = "screenshots"
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_WIRE_NAMES = {"bug_report_id": "bugReportId", "project_id": "projectId"}


def _check_id(_inst: object, attribute: attrs.Attribute, value: object) -> None:
    # The value is not echoed: it may be arbitrarily long, and ids end up in logs.
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise InvalidScreenshotField(
            "ERR_UNSAFE_ID", f"{_WIRE_NAMES[attribute.name]} must be 1-64 characters of A-Z a-z 0-9 _ -")


def _check_data_url(_inst: object, _attribute: attrs.Attribute, value: object) -> None:
    """Scheme, MIME type and size at enqueue; the base64 and the image are checked by the worker."""
    try:
        imaging.parse_data_url(value, settings.current().max_bytes)
    except ScreenshotRejected as exc:
        raise InvalidScreenshotField(exc.code, str(exc)) from None


@attrs.frozen(kw_only=True)
class ScreenshotJob:
    """Payload of the ``screenshots`` queue (wire: ``{bugReportId, projectId, screenshotData}``)."""

    bug_report_id: str = attrs.field(validator=_check_id)
    project_id: str = attrs.field(validator=_check_id)
    screenshot_data: str = attrs.field(validator=_check_data_url,
                                       repr=lambda v: f"<data URL, {len(v)} chars>")


def process_screenshot(job: JobContext) -> dict[str, Any]:
    """Handle one screenshot job; returns ``{originalUrl, thumbnailUrl, originalSize, thumbnailSize,
    width, height}`` (width and height of the optimized image)."""
    shot: ScreenshotJob = job.data
    cfg = settings.current()
    imaging.reuse_image_memory()
    try:
        decoded = imaging.decode_data_url(shot.screenshot_data, cfg.max_bytes)
        job.progress("1/5")
        source = imaging.load_image(decoded, cfg)
        del decoded
        image, original = imaging.optimize(source, cfg)
        described = {"format": source.format, "width": source.width, "height": source.height}
        del source  # the full-size decode: up to 160 MB, not needed for the upload
        job.progress("2/5")
        thumbnail = imaging.make_thumbnail(image, cfg)
        del image
        job.progress("3/5")
    except ScreenshotRejected as exc:
        _record_failure(job, shot, exc)
        raise

    storage = _cached("storage", _storage_key(), _make_storage)
    folder = (KEY_ROOT, shot.project_id, shot.bug_report_id)
    original_key = safe_key(*folder, f"original.{original.ext}")
    thumbnail_key = safe_key(*folder, f"thumbnail.{thumbnail.ext}")
    storage.put(original_key, original.data, content_type=original.content_type)
    storage.put(thumbnail_key, thumbnail.data, content_type=thumbnail.content_type)
    job.progress("4/5")

    result = {
        "originalUrl": storage.url(original_key),
        "thumbnailUrl": storage.url(thumbnail_key),
        "originalSize": len(original.data),
        "thumbnailSize": len(thumbnail.data),
        "width": original.width,
        "height": original.height,
    }
    outcome = {
        "status": "ready", **result,
        "originalKey": original_key, "thumbnailKey": thumbnail_key, "format": original.format,
        "thumbnailWidth": thumbnail.width, "thumbnailHeight": thumbnail.height,
        "source": described,
        "jobId": job.id,
    }
    try:
        _report_store().record(shot.bug_report_id, shot.project_id, METADATA_KEY, outcome)
    except UnrecoverableError:
        # The report belongs to another project (or the ids are unusable there): take back
        # what this job wrote rather than leave images no report points to.
        for key in (original_key, thumbnail_key):
            storage.delete(key)
        raise
    job.progress("5/5")
    return result


def _record_failure(job: JobContext, shot: ScreenshotJob, exc: ScreenshotRejected) -> None:
    """Tell the report its screenshot will not come; best effort, the job fails either way."""
    try:
        _report_store().record(shot.bug_report_id, shot.project_id, METADATA_KEY,
                               {"status": "failed", "code": exc.code, "message": str(exc), "jobId": job.id})
    except Exception as err:
        log.warning("screenshots/%s: could not record failure %s on the report (%s)",
                    job.id, exc.code, type(err).__name__)


# --- per-process clients, rebuilt when their environment changes ---------------------------------

T = TypeVar("T")
_clients: dict[str, tuple[tuple[str | None, ...], Any]] = {}
_clients_lock = threading.Lock()


def _cached(kind: str, key: tuple[str | None, ...], make: Callable[[], T]) -> T:
    with _clients_lock:
        held = _clients.get(kind)
        if held is not None and held[0] == key:
            return held[1]
        client = make()
        _clients[kind] = (key, client)
    if held is not None and hasattr(held[1], "close"):
        held[1].close()
    return client


def _storage_key() -> tuple[str | None, ...]:
    s = Settings.from_env()
    return (s.storage_url, s.storage_public_url)


def _make_storage() -> Storage:
    return Storage.from_settings(Settings.from_env())


def _report_store() -> ReportStore:
    key = tuple(os.environ.get(n) for n in ("DATABASE_URL", "JOBQ_REPORTS_TABLE", "JOBQ_REPORTS_POOL_SIZE"))
    return _cached("reports", key, ReportStore.from_env)
