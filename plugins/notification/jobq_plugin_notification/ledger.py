"""Per-recipient delivery records, kept durably in the bug-report store.

Records live in the report's metadata under ``notifications.<jobKey>.<deliveryId>``, so a retry
of the job (same ``job.id``) skips recipients already delivered or permanently failed, and the
report shows who was notified of what. Each record is written by one atomic ``store.record`` call
right after its send, before the next recipient's record.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

from jobq_bugreports.store import ReportStore

from .outcome import Outcome
from .recipients import Recipient

_KEY_PART = re.compile(r"[A-Za-z0-9_-]{1,64}")


def job_key(job_id: str) -> str:
    """The job id when it fits a metadata key part (64 characters), else a hash of it."""
    if _KEY_PART.fullmatch(job_id):
        return job_id
    return "h" + hashlib.sha256(job_id.encode()).hexdigest()[:40]


class DeliveryLedger:
    """Reads and writes the delivery records of one notification job."""

    def __init__(
        self, store: ReportStore, *, report_id: str, project_id: str, job_id: str, channel: str, event: str
    ) -> None:
        self.store = store
        self.report_id = report_id
        self.project_id = project_id
        self.channel = channel
        self.event = event
        self.job_key = job_key(job_id)
        self.prefix = f"notifications.{self.job_key}"

    def load(self, report: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
        """The records of earlier attempts, by delivery id (``report`` is ``store.get_report(...)``)."""
        if not report:
            return {}
        entry = (report.get("metadata") or {}).get("notifications", {}).get(self.job_key, {})
        return {k: v for k, v in entry.items() if isinstance(v, dict)} if isinstance(entry, dict) else {}

    def write(self, recipient: Recipient, outcome: Outcome, attempt: int) -> dict[str, Any]:
        """Record one recipient's outcome; returns the record."""
        record: dict[str, Any] = {
            "recipient": recipient.label,
            "type": self.channel,
            "event": self.event,
            "status": "pending" if outcome.status == "retry" else outcome.status,
            "attempt": attempt,
            "at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        if outcome.code:
            record["code"] = outcome.code
            record["message"] = outcome.message
        if outcome.http_status is not None:
            record["httpStatus"] = outcome.http_status
        self.store.record(self.report_id, self.project_id, f"{self.prefix}.{recipient.delivery_id}", record)
        return record
