"""The ``notifications`` payload, validated at enqueue so a producer hears about a bad recipient at once.

Validation messages name a recipient by its index, never by its value: Slack webhook URLs and
webhook secrets are credentials.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import attrs
import httpx

Channel = Literal["email", "slack", "webhook"]

MAX_RECIPIENTS = 100
MAX_TITLE = 500
MAX_DESCRIPTION = 64 * 1024
MAX_URL = 2048
SEVERITIES = ("low", "medium", "high", "critical")

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_EVENT = re.compile(r"[a-z][a-z0-9_.]{0,63}")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# A deliberately plain addr-spec: no quoted local parts, comments, IP literals or whitespace, so no
# header injection and nothing a mail server reads differently from us.
EMAIL = re.compile(rf"[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]{{1,64}}@{_LABEL}(?:\.{_LABEL})+")
SECRET = re.compile(r"whsec_[A-Za-z0-9+/=_-]{16,200}")


def _id(_inst: Any, attr: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ValueError(f"'{attr.name}' must be 1-128 characters of A-Z a-z 0-9 _ -, starting with a letter or digit")


def _text(limit: int, *, required: bool = False) -> Any:
    def check(_inst: Any, attr: attrs.Attribute, value: Any) -> None:
        if not isinstance(value, str):
            raise ValueError(f"'{attr.name}' must be a string")
        if required and not value.strip():
            raise ValueError(f"'{attr.name}' must not be empty")
        if len(value) > limit:
            raise ValueError(f"'{attr.name}' must be at most {limit} characters")

    return check


def _optional_url(_inst: Any, attr: attrs.Attribute, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str) or len(value) > MAX_URL:
        raise ValueError(f"'{attr.name}' must be a string of at most {MAX_URL} characters, or null")


@attrs.frozen(kw_only=True)
class Report:
    """The report's content as the notification shows it (escaped wherever it is rendered)."""

    title: str = attrs.field(validator=_text(MAX_TITLE, required=True))
    description: str = attrs.field(default="", validator=_text(MAX_DESCRIPTION))
    severity: str = attrs.field(default="medium", validator=attrs.validators.in_(SEVERITIES))
    url: str | None = attrs.field(default=None, validator=_optional_url)


def is_email(value: str) -> bool:
    return len(value) <= 254 and bool(EMAIL.fullmatch(value))


def is_http_url(value: str) -> bool:
    """An absolute http(s) URL with a host and no credentials; where it may go is the policy's call."""
    if len(value) > MAX_URL or any(c.isspace() for c in value):
        return False
    try:
        u = httpx.URL(value)
    except Exception:  # httpx raises several types for malformed URLs
        return False
    return u.scheme in ("http", "https") and bool(u.host) and not u.userinfo


def secret_list(value: Any) -> list[str] | None:
    """Webhook secrets as a list (several while one is rotated out), or ``None`` if malformed."""
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, list) or not items or len(items) > 5:
        return None
    if not all(isinstance(s, str) and SECRET.fullmatch(s) for s in items):
        return None
    return list(items)


def _recipient_problem(channel: str, value: Any) -> str | None:
    if channel == "email":
        return None if isinstance(value, str) and is_email(value) else "is not an email address"
    if channel == "slack":
        return None if isinstance(value, str) and is_http_url(value) else "is not an http(s) webhook URL"
    if isinstance(value, str):
        return None if is_http_url(value) else "is not an http(s) URL"
    if not isinstance(value, dict) or not set(value) <= {"url", "secret"} or "url" not in value:
        return "must be a URL or an object {url, secret}"
    if not isinstance(value["url"], str) or not is_http_url(value["url"]):
        return "has a url that is not an http(s) URL"
    if "secret" in value and secret_list(value["secret"]) is None:
        return "has a secret not in the Standard Webhooks form (whsec_ + base64)"
    return None


@attrs.frozen(kw_only=True)
class NotificationJob:
    """One notification: an event of one bug report, sent to the recipients of one channel.

    :param type: ``email`` (addresses), ``slack`` (incoming-webhook URLs) or ``webhook`` (URLs or
        ``{url, secret}`` objects).
    :param event: what happened to the report (``created``, ``updated``, ``resolved``...).
    :param report: the report's content; loaded from the bug-report store when omitted.
    """

    bug_report_id: str = attrs.field(validator=_id)
    project_id: str = attrs.field(validator=_id)
    type: Channel = attrs.field(validator=attrs.validators.in_(("email", "slack", "webhook")))
    recipients: Any  # a list; typed Any so cattrs does not turn a lone string into a list of characters
    event: str = attrs.field(default="created")
    report: Report | None = None

    @event.validator
    def _check_event(self, _attr: attrs.Attribute, value: Any) -> None:
        if not isinstance(value, str) or not _EVENT.fullmatch(value):
            raise ValueError("'event' must be a lower-case word like 'created' or 'status_changed'")

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.recipients, list) or not self.recipients:
            raise ValueError("'recipients' must be a non-empty list")
        if len(self.recipients) > MAX_RECIPIENTS:
            raise ValueError(f"'recipients' holds {len(self.recipients)} entries, at most {MAX_RECIPIENTS}")
        for i, value in enumerate(self.recipients):
            problem = _recipient_problem(self.type, value)
            if problem:
                raise ValueError(f"'recipients[{i}]' {problem} (type {self.type!r})")
