"""jobq notifications: email (SMTP or SendGrid), Slack incoming webhooks, signed custom webhooks."""

from jobq import QueueSpec, hookimpl

from .handler import send_notification
from .hostlimit import job_limit_key
from .payload import NotificationJob

QUEUE = "notifications"
REASON_CODES = ("ERR_AUTH", "ERR_CONFIG", "ERR_DELIVERY_FAILED", "ERR_DELIVERY_REJECTED", "ERR_DELIVERY_TIMEOUT",
                "ERR_INVALID_RECIPIENT", "ERR_MISSING_SECRET", "ERR_PROJECT_MISMATCH", "ERR_RATE_LIMITED",
                "ERR_REPORT_NOT_FOUND", "ERR_TLS")


@hookimpl
def jobq_queues() -> list[QueueSpec]:
    return [
        QueueSpec(
            name=QUEUE,
            handler=send_notification,
            payload=NotificationJob,
            concurrency=5,
            retries=3,
            timeout=60,
            secret_fields=("recipients",),
            limit_key=job_limit_key,
            description="Email, Slack and webhook notifications of bug-report events",
            reason_codes=REASON_CODES,
        )
    ]
