"""Email through SendGrid's v3 mail-send API: one request per recipient.

One request per recipient rather than one per job with many personalizations: SendGrid accepts or
refuses a request as a whole, so a single bad address would fail everybody's mail, and per-recipient
requests give each recipient its own outcome and delivery record.
"""

from __future__ import annotations

import email.utils
from typing import Any

import httpx

from .config import NotificationConfig
from .outcome import Outcome, from_http_error, from_response
from .recipients import Recipient
from .render import Email

PATH = "/v3/mail/send"


def mail_body(cfg: NotificationConfig, recipient: Recipient, content: Email) -> dict[str, Any]:
    name, sender = email.utils.parseaddr(cfg.smtp_from)
    sender_obj = {"email": sender, **({"name": name} if name else {})}
    return {
        "personalizations": [
            {
                "to": [{"email": recipient.target}],
                "custom_args": {"jobq_delivery_id": recipient.delivery_id},
            }
        ],
        "from": sender_obj,
        "subject": content.subject,
        "content": [
            {"type": "text/plain", "value": content.text},
            {"type": "text/html", "value": content.html},
        ],
        "headers": {"Auto-Submitted": "auto-generated"},
    }


def _errors(response: httpx.Response) -> str:
    """SendGrid's error messages for a 400 (field names and wording, no request data)."""
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return ""
    parts = [f"{e.get('field') or 'request'}: {e.get('message', '')}" for e in errors[:3] if isinstance(e, dict)]
    return "; ".join(parts)[:300]


async def send_sendgrid(
    client: httpx.AsyncClient, cfg: NotificationConfig, recipient: Recipient, content: Email
) -> Outcome:
    try:
        response = await client.post(
            cfg.sendgrid_api_url + PATH,
            json=mail_body(cfg, recipient, content),
            headers={"authorization": f"Bearer {cfg.sendgrid_api_key}"},
        )
    except Exception as exc:  # classified below; anything unexpected propagates from there
        return from_http_error(exc)
    outcome = from_response(response)
    if response.status_code == 400:
        detail = _errors(response)
        if detail:
            outcome = Outcome(
                outcome.status, outcome.code, f"{outcome.message}: {detail}", http_status=outcome.http_status
            )
    return outcome
