"""Message bodies for every channel, built from the report's content, which is user input.

Email comes from Jinja templates (HTML ones autoescaped; override them with
``NOTIFICATION_TEMPLATE_DIR``); Slack text is escaped for mrkdwn (``&``, ``<``, ``>``, so a report
cannot ping ``<!channel>`` or fake a link); the webhook body is JSON. Control characters are
dropped everywhere and header values are single lines, so nothing can inject a header.
"""

from __future__ import annotations

import functools
import json
import re
from datetime import UTC, datetime
from typing import Any

import attrs
import httpx
import jinja2

from .payload import Report

EVENT_LABELS = {
    "created": "New bug report",
    "updated": "Bug report updated",
    "resolved": "Bug report resolved",
    "reopened": "Bug report reopened",
    "commented": "New comment on a bug report",
    "assigned": "Bug report assigned",
    "status_changed": "Bug report status changed",
}
SUBJECT_LIMIT = 200
SLACK_HEADER_LIMIT = 150
SLACK_TEXT_LIMIT = 2900
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def clean(text: str) -> str:
    """Normalise newlines and drop control characters (tabs and newlines stay)."""
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def one_line(text: str, limit: int) -> str:
    line = " ".join(clean(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def safe_link(url: str | None) -> str | None:
    """The report URL when it is an absolute http(s) URL (never ``javascript:`` and the like)."""
    if not url:
        return None
    try:
        u = httpx.URL(url)
    except Exception:  # httpx raises several types for malformed URLs
        return None
    if u.scheme not in ("http", "https") or not u.host or any(c.isspace() for c in url):
        return None
    return str(u)


def event_label(event: str) -> str:
    return EVENT_LABELS.get(event) or "Bug report " + event.replace("_", " ").replace(".", " ")


@attrs.frozen(kw_only=True)
class Notice:
    """What happened, ready to render: the report's content and where it came from."""

    bug_report_id: str
    project_id: str
    event: str
    report: Report
    occurred_at: float

    def context(self) -> dict[str, Any]:
        return {
            "bug_report_id": self.bug_report_id,
            "project_id": self.project_id,
            "event": self.event,
            "event_label": event_label(self.event),
            "title": one_line(self.report.title, 500),
            "description": clean(self.report.description).strip(),
            "severity": self.report.severity,
            "url": safe_link(self.report.url),
        }


@attrs.frozen
class Email:
    subject: str
    text: str
    html: str


@functools.lru_cache(maxsize=4)
def _environment(template_dir: str) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = [jinja2.PackageLoader("jobq_plugin_notification", "templates")]
    if template_dir:
        loaders.insert(0, jinja2.FileSystemLoader(template_dir))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=lambda name: name is not None and ".html" in name,
        undefined=jinja2.StrictUndefined,
    )


def render_email(notice: Notice, template_dir: str = "") -> Email:
    env = _environment(template_dir)
    ctx = notice.context()
    subject = one_line(env.get_template("subject.txt.j2").render(ctx), SUBJECT_LIMIT)
    text = env.get_template("body.txt.j2").render(ctx).strip() + "\n"
    html = env.get_template("body.html.j2").render(ctx)
    return Email(subject, text, html)


def slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_message(notice: Notice) -> dict[str, Any]:
    """A Block Kit message for an incoming webhook, with a plain ``text`` fallback for notifications."""
    ctx = notice.context()
    title = slack_escape(ctx["title"])
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _cut(ctx["event_label"], SLACK_HEADER_LIMIT)},
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(f"*{title}*", SLACK_TEXT_LIMIT)}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Severity*\n{ctx['severity']}"},
                {"type": "mrkdwn", "text": f"*Project*\n{slack_escape(ctx['project_id'])}"},
            ],
        },
    ]
    if ctx["description"]:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _cut(slack_escape(ctx["description"]), SLACK_TEXT_LIMIT)},
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"Report {slack_escape(ctx['bug_report_id'])} · {slack_escape(notice.event)}",
                }
            ],
        }
    )
    if ctx["url"] and len(ctx["url"]) <= 3000:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open report"},
                        "url": ctx["url"],
                    }
                ],
            }
        )
    fallback = _cut(f"{ctx['event_label']} [{ctx['severity']}]: {title}", SLACK_TEXT_LIMIT)
    return {"text": fallback, "blocks": blocks}


def webhook_body(notice: Notice) -> bytes:
    """The Standard Webhooks envelope ``{type, timestamp, data}``; identical on every retry."""
    r = notice.report
    body = {
        "type": f"bug_report.{notice.event}",
        "timestamp": datetime.fromtimestamp(notice.occurred_at, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "data": {
            "bugReportId": notice.bug_report_id,
            "projectId": notice.project_id,
            "event": notice.event,
            "report": {"title": r.title, "description": r.description, "severity": r.severity, "url": r.url},
        },
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
