"""The ``notifications`` handler: validate, route, send to each recipient once, track every delivery.

Per attempt: read the delivery records of earlier attempts (same ``job.id``), send only to recipients
that are neither delivered nor permanently failed, record each outcome as soon as it is known, then
finish: all final -> the result (or a permanent failure when nobody could be reached); some pending ->
``jobq.Retry`` after a 429, else a retryable ``JobFailed`` listing the errors.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
from collections.abc import Iterable
from typing import Any

from jobq import JobContext, JobFailed, RateLimited, UnrecoverableError
from jobq.outbound import async_http_client
from jobq.redaction import secrets_in_logs
from jobq_bugreports.store import DATABASE_URL, DEFAULT_URL, REPORTS_TABLE, SEVERITIES, ReportStore

from .config import ConfigInvalid, NotificationConfig
from .hostlimit import admit_host, host_rate, job_limit_key
from .ledger import DeliveryLedger
from .outcome import ERR_DELIVERY_FAILED, ERR_RATE_LIMITED, Outcome, retry
from .payload import NotificationJob, Report
from .recipients import Recipient, build_recipients
from .render import Notice, render_email, slack_message, webhook_body
from .sendgrid import send_sendgrid
from .slack import send_slack
from .smtp import build_message, send_smtp
from .webhook import send_webhook

log = logging.getLogger(__name__)

REDACTED = "[redacted]"
_stores: list[ReportStore] = []


@functools.lru_cache(maxsize=4)
def _store(url: str, table: str) -> ReportStore:
    store = ReportStore.from_env({DATABASE_URL: url, REPORTS_TABLE: table})
    _stores.append(store)
    return store


def close_stores() -> None:
    """Close the cached report stores (tests, worker shutdown)."""
    for store in _stores:
        store.close()
    _stores.clear()
    _store.cache_clear()


def report_store() -> ReportStore:
    """The bug-report store of ``DATABASE_URL``, one per process and URL."""
    return _store(os.environ.get(DATABASE_URL) or DEFAULT_URL, os.environ.get(REPORTS_TABLE) or "")


class Scrubber:
    """Removes secret values (credentials, webhook URLs) from any text we keep or show."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for s in self.secrets:
            if s in text:
                text = text.replace(s, REDACTED)
        return text


def _report(data: NotificationJob, row: dict[str, Any] | None) -> Report:
    if data.report is not None:
        return data.report
    if row is None:
        raise UnrecoverableError(
            f"bug report {data.bug_report_id} not found and the payload has no 'report'",
            code="ERR_REPORT_NOT_FOUND",
        )
    severity = row.get("severity") if row.get("severity") in SEVERITIES else "medium"
    return Report(
        title=(row.get("title") or "").strip() or f"Bug report {data.bug_report_id}",
        description=row.get("description") or "",
        severity=severity,
        url=row.get("url") or None,
    )


class Delivery:
    """One attempt of one notification job."""

    def __init__(self, job: JobContext, data: NotificationJob, cfg: NotificationConfig, store: ReportStore) -> None:
        self.job = job
        self.data = data
        self.cfg = cfg
        self.recipients = build_recipients(job.id, data.type, data.recipients)
        self.ledger = DeliveryLedger(
            store,
            report_id=data.bug_report_id,
            project_id=data.project_id,
            job_id=job.id,
            channel=data.type,
            event=data.event,
        )
        targets = [r.target for r in self.recipients] if data.type != "email" else []
        self.scrub = Scrubber([*cfg.secrets(), *targets, *(s for r in self.recipients for s in r.secrets)])
        self.records: dict[str, dict[str, Any]] = {}
        self.outcomes: dict[str, Outcome] = {}
        self.done = 0
        self._lock = threading.Lock()  # note() runs in worker threads, several at once

    def note(self, recipient: Recipient, outcome: Outcome) -> None:
        """Record an outcome durably (called from worker threads: the store is thread-safe)."""
        if outcome.message:
            outcome = Outcome(
                outcome.status,
                outcome.code,
                self.scrub(outcome.message)[:500],
                outcome.retry_after,
                outcome.http_status,
            )
        record = self.ledger.write(recipient, outcome, self.job.attempt)
        with self._lock:
            self.records[recipient.delivery_id] = record
            self.outcomes[recipient.delivery_id] = outcome
            self.done += 1
            done = self.done
        log.info(
            "notification %s attempt %d: %s recipient %s %s%s",
            self.job.id,
            self.job.attempt,
            self.data.type,
            recipient.label,
            outcome.status,
            f" {outcome.code}" if outcome.code else "",
        )
        self.job.progress(f"{done}/{len(self.recipients)}")

    async def run(self, row: dict[str, Any] | None) -> dict[str, Any]:
        self.records = self.ledger.load(row)
        todo = [
            r
            for r in self.recipients
            if self.records.get(r.delivery_id, {}).get("status") not in ("delivered", "failed")
        ]
        self.done = len(self.recipients) - len(todo)
        if todo:
            notice = Notice(
                bug_report_id=self.data.bug_report_id,
                project_id=self.data.project_id,
                event=self.data.event,
                report=_report(self.data, row),
                occurred_at=self.job.created_at,
            )
            await self._send(todo, notice)
        return self.finish()

    async def _send(self, todo: list[Recipient], notice: Notice) -> None:
        cfg = self.cfg
        if self.data.type == "email" and not cfg.sendgrid_api_key:
            content = render_email(notice, cfg.template_dir)
            messages = [(r, build_message(cfg, r, content)) for r in todo]
            stop = threading.Event()
            try:
                await asyncio.to_thread(send_smtp, cfg, messages, self.note, stop)
            except asyncio.CancelledError:
                stop.set()
                raise
            return
        if self.data.type == "email":
            content = render_email(notice, cfg.template_dir)
        elif self.data.type == "slack":
            message = slack_message(notice)
        else:
            body = webhook_body(notice)
            rate = host_rate()
        gate = asyncio.Semaphore(cfg.max_parallel)

        async def one(client: Any, r: Recipient) -> None:
            async with gate:
                if self.data.type == "email":
                    outcome = await send_sendgrid(client, cfg, r, content)
                elif self.data.type == "slack":
                    outcome = await send_slack(client, r, message, cfg.policy)
                else:
                    admitted = await admit_host(self.job.settings, r.target, rate) if rate else None
                    if admitted is not None and not admitted.allowed:
                        outcome = retry(ERR_RATE_LIMITED, f"over the limit of {rate[0]} webhooks to one host in "
                                        f"{rate[1]:g}s", retry_after=max(admitted.reset, 0.05))  # type: ignore[index]
                    else:
                        outcome = await send_webhook(client, r, body, cfg.webhook_secrets)
                await asyncio.to_thread(self.note, r, outcome)

        async with async_http_client(cfg.policy, timeout=cfg.timeout) as client:
            await asyncio.gather(*(one(client, r) for r in todo))

    def finish(self) -> dict[str, Any]:
        statuses = {r.delivery_id: self.records.get(r.delivery_id, {}) for r in self.recipients}
        ok = [r for r in self.recipients if statuses[r.delivery_id].get("status") == "delivered"]
        final_failed = [r for r in self.recipients if statuses[r.delivery_id].get("status") == "failed"]
        pending = [r for r in self.recipients if r not in ok and r not in final_failed]
        errors = [
            {
                "recipient": r.label,
                "code": statuses[r.delivery_id].get("code", ERR_DELIVERY_FAILED),
                "message": statuses[r.delivery_id].get("message", "not delivered"),
            }
            for r in self.recipients
            if r in final_failed or r in pending
        ]
        listing = "; ".join(f"{e['recipient']}: {e['code']} {e['message']}" for e in errors)[:2000]
        n = len(self.recipients)
        if pending:
            delays = [
                o.retry_after
                for r in pending
                if (o := self.outcomes.get(r.delivery_id)) is not None and o.retry_after is not None
            ]
            if delays:
                # one host for all webhooks: every job for that host waits (its limit key)
                key = job_limit_key({"type": self.data.type, "recipients": self.data.recipients})
                raise RateLimited(max(delays), key=key, reason=f"{len(pending)} of {n} recipients rate limited: "
                                  f"{listing}")
            raise JobFailed(f"{len(pending)} of {n} recipients not delivered yet: {listing}", code=ERR_DELIVERY_FAILED)
        if final_failed and not ok:
            codes = {e["code"] for e in errors}
            raise UnrecoverableError(
                f"no recipient could be notified: {listing}",
                code=codes.pop() if len(codes) == 1 else ERR_DELIVERY_FAILED,
            )
        return {
            "type": self.data.type,
            "recipientCount": n,
            "successCount": len(ok),
            "failureCount": len(final_failed),
            "errors": errors,
        }


async def send_notification(job: JobContext) -> dict[str, Any]:
    """Handler of the ``notifications`` queue (``job.data`` is a :class:`NotificationJob`)."""
    data: NotificationJob = job.data
    cfg = NotificationConfig.from_env()
    if data.type == "email":
        cfg.check_email()
    unsigned = data.type == "webhook" and any(not isinstance(r, dict) or "secret" not in r for r in data.recipients)
    if unsigned and cfg.webhook_secret_error:
        raise ConfigInvalid(cfg.webhook_secret_error)  # names the variable, never its value
    store = report_store()
    row = await asyncio.to_thread(store.get_report, data.bug_report_id)
    if row is not None and row.get("projectId") != data.project_id:
        raise UnrecoverableError(
            f"bug report {data.bug_report_id} belongs to another project", code="ERR_PROJECT_MISMATCH"
        )
    delivery = Delivery(job, data, cfg, store)
    with secrets_in_logs(delivery.scrub.secrets):  # webhook URLs and tokens, should a server echo them
        return await delivery.run(row)
