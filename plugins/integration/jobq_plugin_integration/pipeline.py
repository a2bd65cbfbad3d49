"""validate → route → call the platform → store the external id on the bug report.

Idempotency lives here, the same for every platform:

* the bug report's ``metadata.integrations.<platform>`` holds the issue once it exists, written
  right after the create call returns; a later sync of the same report to the same target
  updates that issue (``status: "updated"``);
* before any create, the platform may look for an issue an earlier attempt created but never
  recorded (request sent, response lost) by the report's marker, and that one is adopted;
* a per-report lock (:mod:`.lock`) keeps two jobs from creating at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, Protocol

import attrs
import httpx
from jobq import JobContext, JobFailed, RateLimited, Retry, Settings, UnrecoverableError
from jobq.outbound import describe_url
from jobq.redaction import secrets_in_logs

from .errors import InvalidField, ProtocolError, ReportNotFound
from .fields import structure
from .http import PlatformHttp, shared_client
from .limits import limit_key
from .limits import pace as pace_target
from .lock import report_lock
from .payload import SEVERITIES, IntegrationJob
from .platform import ExternalIssue, Platform, Report, Sync
from .redact import Redactor
from .references import resolve_references
from .registry import Registry, default_registry

TIMEOUT_ENV = "JOBQ_INTEGRATION_HTTP_TIMEOUT"
ALLOW_HTTP_ENV = "JOBQ_INTEGRATION_ALLOW_HTTP"
DEFAULT_TIMEOUT = 15.0
RECORD_PREFIX = "integrations"

log = logging.getLogger(__name__)


class Store(Protocol):
    """The part of ``jobq_bugreports.store.ReportStore`` the pipeline uses."""

    def get_report(self, report_id: str) -> dict[str, Any] | None: ...
    def record(self, report_id: str, project_id: str, key: str, value: Any) -> None: ...


@attrs.frozen(kw_only=True)
class IntegrationSettings:
    """Worker-side settings, read from the environment at handler time.

    :param timeout: seconds for each HTTP connect/read/write (``JOBQ_INTEGRATION_HTTP_TIMEOUT``).
    :param allow_http: admit ``http://`` API URLs (``JOBQ_INTEGRATION_ALLOW_HTTP=1``): tests and
        on-premises trackers only, since credentials would cross the network in clear.
    """

    timeout: float = DEFAULT_TIMEOUT
    allow_http: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IntegrationSettings:
        e = os.environ if env is None else env
        raw = e.get(TIMEOUT_ENV) or ""
        try:
            timeout = float(raw) if raw else DEFAULT_TIMEOUT
        except ValueError:
            from jobq import ConfigError

            raise ConfigError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
        return cls(timeout=timeout, allow_http=(e.get(ALLOW_HTTP_ENV) or "").lower() in ("1", "true", "yes"))


_stores: dict[tuple[str, ...], Store] = {}
_stores_lock = threading.Lock()


def default_store() -> Store:
    """One ``ReportStore`` per process and database URL (it is thread-safe and pools connections)."""
    from jobq_bugreports.store import DATABASE_URL, REPORTS_POOL_SIZE, REPORTS_TABLE, ReportStore

    key = tuple(os.environ.get(k, "") for k in (DATABASE_URL, REPORTS_TABLE, REPORTS_POOL_SIZE))
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = ReportStore.from_env()
        return store


def marker_for(project_id: str, bug_report_id: str) -> str:
    """A stable tag for one report, safe as a Jira label, a Slack block_id or an HTML comment."""
    digest = hashlib.sha256(f"{project_id}/{bug_report_id}".encode()).hexdigest()
    return f"jobq-{digest[:20]}"


def _nested(mapping: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(part)
    return mapping


def _metadata_url(metadata: Any, *paths: tuple[str, ...]) -> str | None:
    for path in paths:
        value = _nested(metadata, *path)
        if isinstance(value, str) and value:
            return value
    return None


def merge_report(payload: IntegrationJob, row: dict[str, Any] | None) -> Report:
    """The payload's report fields, each falling back to the store's row."""
    given = payload.report
    row = row or {}
    metadata = row.get("metadata") or {}

    def pick(name: str, stored: Any) -> Any:
        value = getattr(given, name, None) if given is not None else None
        return value if value is not None else stored

    title = pick("title", row.get("title") or None)
    if not title:
        where = "has no title" if row else "is not in the bug-report store"
        raise ReportNotFound(f"bug report {payload.bug_report_id} {where} and the payload carries no "
                             "report.title; send the report's content in the payload")
    severity = pick("severity", row.get("severity"))
    return Report(
        bug_report_id=payload.bug_report_id,
        project_id=payload.project_id,
        title=title,
        description=pick("description", row.get("description")) or "",
        severity=severity if severity in SEVERITIES else "medium",
        url=pick("url", row.get("url")),
        # what the screenshot and replay plugins record on the report
        screenshot_url=pick("screenshot_url", _metadata_url(metadata, ("screenshot", "originalUrl"),
                                                            ("screenshot", "url"))),
        replay_url=pick("replay_url", _metadata_url(metadata, ("replay", "replayUrl"), ("replay", "url"))),
    )


def previous_issue(row: dict[str, Any] | None, platform: str, target: str) -> ExternalIssue | None:
    """The issue recorded for this platform and target by an earlier sync, if any."""
    rec = _nested(row or {}, "metadata", RECORD_PREFIX, platform)
    if not isinstance(rec, dict) or not rec.get("externalId") or rec.get("target", "") != target:
        return None
    ref = rec.get("ref") if isinstance(rec.get("ref"), dict) else {}
    return ExternalIssue(external_id=str(rec["externalId"]), external_url=str(rec.get("externalUrl") or ""),
                         ref=ref)


def _check_transport(platform: Platform, config: Any, settings: IntegrationSettings) -> None:
    for url in platform.api_urls(config):
        if httpx.URL(url).scheme != "https" and not settings.allow_http:
            raise InvalidField("config", f"{describe_url(url)} is plain http, which would send the credentials "
                                         f"unencrypted; use https (or set {ALLOW_HTTP_ENV}=1 for a test or "
                                         "on-premises server)")


async def _in_store(store: Store, method: str, *args: Any) -> Any:
    """Call the (blocking) store in a thread; its transient failures become a retryable reason code."""
    try:
        return await asyncio.to_thread(getattr(store, method), *args)
    except tuple(getattr(store, "transient_errors", ())) as exc:
        raise JobFailed(f"bug-report store unavailable during {method} ({type(exc).__name__})",
                        code="ERR_REPORT_STORE") from None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


Lock = Callable[[str, str], AbstractAsyncContextManager[Any]]
Pace = Callable[[str, float], Awaitable[None]]


async def no_pace(_target: str, _interval: float) -> None:
    return None


@contextlib.asynccontextmanager
async def no_lock(_platform: str, _marker: str) -> AsyncIterator[None]:
    yield


async def run_sync(payload: IntegrationJob, *, job_id: str, attempt: int, since: float, store: Store,
                   client: httpx.AsyncClient, registry: Registry, settings: IntegrationSettings,
                   lock: Lock = no_lock, progress: Callable[[Any], None] = lambda _v: None,
                   pace: Pace = no_pace) -> dict[str, Any]:
    """Sync one report to one platform; return ``{platform, externalId, externalUrl, status}``.

    :param lock: ``lock(platform, marker)`` serialises syncs of one report (:func:`lock.report_lock`).
    :param pace: spaces calls per target across workers (:func:`limits.pace`).
    """
    progress("1/4")
    platform = registry.get(payload.platform)
    credentials = structure(platform.credentials_type, resolve_references(payload.credentials), "credentials")
    config = structure(platform.config_type, payload.config, "config")
    redact = Redactor(platform.secret_values(credentials))
    _check_transport(platform, config, settings)
    marker = marker_for(payload.project_id, payload.bug_report_id)

    progress("2/4")
    async with lock(platform.name, marker):
        row = await _in_store(store, "get_report", payload.bug_report_id)
        if row and row.get("projectId") not in (None, payload.project_id):
            raise UnrecoverableError(f"bug report {payload.bug_report_id} belongs to another project than "
                                     f"{payload.project_id}", code="ERR_PROJECT_MISMATCH")
        report = merge_report(payload, row)
        target = platform.target(config)
        sync = Sync(report=report, credentials=credentials, config=config, marker=marker, job_id=job_id,
                    attempt=attempt, since=since, http=PlatformHttp(client, platform, redact), pace=pace)
        existing = previous_issue(row, platform.name, target)

        progress("3/4")
        with secrets_in_logs(redact.values):  # a vendor echoing the token into headers meets DEBUG loggers
            issue, status = await _call_platform(platform, sync, existing, redact,
                                                 limit_key(platform.name, payload.credentials))

        progress("4/4")
        record = {"externalId": issue.external_id, "externalUrl": issue.external_url, "status": status,
                  "target": target, "syncedAt": _now(), "jobId": job_id, "ref": dict(issue.ref)}
        await _in_store(store, "record", payload.bug_report_id, payload.project_id,
                        f"{RECORD_PREFIX}.{platform.name}", record)
    log.info("integrations job %s: %s issue %s %s for report %s", job_id, platform.name, issue.external_id,
             status, report.bug_report_id)
    return {"platform": platform.name, "externalId": issue.external_id, "externalUrl": issue.external_url,
            "status": status}


async def _call_platform(platform: Platform, sync: Sync, existing: ExternalIssue | None,
                         redact: Redactor, key: str) -> tuple[ExternalIssue, str]:
    """Update the recorded issue, adopt one a lost response hid, or create one; errors come out redacted.
    A vendor's rate limit holds every job of this platform and credential (``key``), on every worker."""
    try:
        if existing is not None:
            return await platform.update(sync, existing), "updated"
        issue = await platform.find_existing(sync)
        if issue is not None:
            log.warning("integrations job %s: %s issue %s for report %s was created by an earlier attempt "
                        "whose response was lost; adopting it", sync.job_id, platform.name, issue.external_id,
                        sync.report.bug_report_id)
            return issue, "created"
        return await platform.create(sync), "created"
    except RateLimited as exc:
        raise RateLimited(exc.delay, key=exc.key or key, reason=redact(exc)) from None
    except Retry as exc:
        raise Retry(exc.delay, redact(exc)) from None
    except JobFailed as exc:
        exc.args = (redact(exc, 1000),)
        raise exc from None
    except Exception as exc:  # a platform bug must not leak what its message holds
        raise ProtocolError(f"{platform.name}: unexpected {type(exc).__name__}: {redact(exc, 300)}") from None


async def sync_issue(job: JobContext) -> dict[str, Any]:
    """The ``integrations`` queue's handler."""
    settings = IntegrationSettings.from_env()
    return await run_sync(job.data, job_id=job.id, attempt=job.attempt, since=job.created_at,
                          store=default_store(), client=shared_client(settings.timeout),
                          registry=default_registry(), settings=settings,
                          lock=functools.partial(report_lock, job.settings or Settings.from_env(), owner=job.id),
                          progress=job.progress,
                          pace=functools.partial(pace_target, job.settings or Settings.from_env()))
