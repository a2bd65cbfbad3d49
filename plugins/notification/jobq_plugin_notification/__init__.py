"""jobq notifications: email (SMTP or SendGrid), Slack incoming webhooks, signed custom webhooks."""

from jobq import QueueSpec, hookimpl

from .handler import send_notification
from .hostlimit import job_limit_key
from .payload import NotificationJob

QUEUE = "notifications"


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
        )
    ]
