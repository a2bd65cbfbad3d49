"""Rendering escapes the report's content for every channel."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from jobq_plugin_notification.payload import Report
from jobq_plugin_notification.render import Notice, render_email, slack_message, webhook_body
from notification_support import SPECS

SCHEMA = json.loads((SPECS / "slack" / "incoming-webhook.derived.json").read_text())


def notice(**report: object) -> Notice:
    fields = {"title": "T", "description": "", "severity": "low", "url": None, **report}
    return Notice(bug_report_id="b1", project_id="p1", event="created", report=Report(**fields), occurred_at=0.0)


def test_email_html_is_escaped_and_text_is_plain() -> None:
    email = render_email(
        notice(
            title='<img src=x onerror="alert(1)">',
            description="a < b & <script>x</script>",
            url="javascript:alert(1)",
        )
    )
    assert "<img" not in email.html and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in email.html
    assert "<script>" not in email.html and "a &lt; b &amp; &lt;script&gt;" in email.html
    assert "javascript:" not in email.html and "javascript:" not in email.text  # not a link we render
    assert "a < b & <script>x</script>" in email.text
    assert email.subject == '[LOW] New bug report: <img src=x onerror="alert(1)">'


def test_subject_cannot_inject_headers() -> None:
    email = render_email(notice(title="Broken\r\nBcc: victim@example.com\x00"))
    assert "\n" not in email.subject and "\r" not in email.subject and "\x00" not in email.subject
    assert email.subject == "[LOW] New bug report: Broken Bcc: victim@example.com"


def test_long_content_is_cut_to_slack_limits() -> None:
    message = slack_message(notice(title="x" * 500, description="y" * 60_000, url="https://e.example/" + "z" * 2000))
    jsonschema.Draft202012Validator(SCHEMA).validate(message)
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in message["blocks"])
    assert message["blocks"][-1]["type"] == "actions" and len(message["text"]) <= 3000


def test_templates_can_be_overridden(tmp_path: Path) -> None:
    (tmp_path / "subject.txt.j2").write_text("Custom: {{ title }}")
    email = render_email(notice(title="<x>"), str(tmp_path))
    assert email.subject == "Custom: <x>"
    assert "&lt;x&gt;" in email.html  # the packaged HTML template still applies


def test_webhook_body_is_the_standard_envelope() -> None:
    body = json.loads(webhook_body(notice(title="T")))
    assert body["type"] == "bug_report.created" and body["timestamp"] == "1970-01-01T00:00:00.000Z"
    assert body["data"] == {
        "bugReportId": "b1",
        "projectId": "p1",
        "event": "created",
        "report": {"title": "T", "description": "", "severity": "low", "url": None},
    }
