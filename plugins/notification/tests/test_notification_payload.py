"""The payload contract: refused at enqueue with the field named, never echoing a recipient."""

from __future__ import annotations

import pytest
from jobq import InvalidPayload
from jobq.serialization import structure_payload
from jobq_plugin_notification import jobq_queues
from jobq_plugin_notification.payload import NotificationJob
from notification_support import WEBHOOK_SECRET, payload

SLACK = "https://hooks.slack.com/services/T0/B0/secret-token-123"


def test_queue_spec_matches_the_issue() -> None:
    (spec,) = jobq_queues()
    assert (spec.name, spec.concurrency, spec.retries, spec.timeout) == ("notifications", 5, 3, 60)
    assert spec.payload is NotificationJob and spec.secret_fields == ("recipients",)


def test_valid_payloads_structure() -> None:
    job = structure_payload(
        payload("webhook", ["https://a.example/h", {"url": "https://b.example/", "secret": WEBHOOK_SECRET}]),
        NotificationJob,
    )
    assert job.bug_report_id == "b1" and job.type == "webhook" and job.report.severity == "high"
    minimal = {"bugReportId": "b1", "projectId": "p1", "type": "email", "recipients": ["a@example.com"]}
    job = structure_payload(minimal, NotificationJob)
    assert job.event == "created" and job.report is None


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"type": "sms"}, "data.type"),
        ({"recipients": []}, "non-empty list"),
        ({"recipients": "a@example.com"}, "non-empty list"),
        ({"recipients": ["a@example.com"] * 101}, "at most 100"),
        ({"type": "email", "recipients": ["a@example.com", "not-an-address"]}, "recipients[1]' is not an email"),
        ({"type": "email", "recipients": ["a@example.com\r\nBcc: x@example.com"]}, "recipients[0]"),
        ({"type": "slack", "recipients": ["javascript:alert(1)"]}, "recipients[0]"),
        ({"type": "webhook", "recipients": [{"url": SLACK, "secret": "plain"}]}, "Standard Webhooks form"),
        ({"type": "webhook", "recipients": [{"url": SLACK, "token": "x"}]}, "{url, secret}"),
        ({"type": "webhook", "recipients": ["http://user:pw@example.com/"]}, "recipients[0]"),
        ({"event": "Created!"}, "'event'"),
        ({"bugReportId": "../etc"}, "'bugReportId'"),
        ({"bugReportId": "ok\n"}, "'bugReportId'"),
        ({"event": "created\n"}, "'event'"),
        ({"type": "email", "recipients": ["a@example.com\n"]}, "recipients[0]"),
        ({"report": {"title": " "}}, "'title'"),
        ({"report": {"title": "t", "severity": "urgent"}}, "severity"),
        ({"extra": 1}, "extra fields"),
    ],
)
def test_invalid_payloads_are_refused(change: dict, fragment: str) -> None:
    data = {**payload("slack", [SLACK]), **change}
    with pytest.raises(InvalidPayload) as err:
        structure_payload(data, NotificationJob)
    assert fragment in str(err.value)
    assert "secret-token-123" not in str(err.value)
