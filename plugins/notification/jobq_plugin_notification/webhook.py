"""Custom webhooks: a JSON POST signed per the Standard Webhooks scheme.

``webhook-id`` is the recipient's stable delivery id (receivers dedupe on it across our retries),
``webhook-timestamp`` is fresh on every attempt, ``webhook-signature`` is
``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, one per active secret while a secret is
rotated.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import httpx

from .outcome import ERR_MISSING_SECRET, Outcome, failed, from_http_error, from_response
from .recipients import Recipient

USER_AGENT = "jobq-notifications/0.1"


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret."""
    raw = secret.removeprefix("whsec_")
    return base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_" if "-" in raw or "_" in raw else None)


def sign(msg_id: str, timestamp: int, body: bytes, secrets: tuple[str, ...] | list[str]) -> str:
    """The ``webhook-signature`` header value: space-separated ``v1,<sig>``, one per secret."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    sigs = [base64.b64encode(hmac.new(secret_key(s), signed, hashlib.sha256).digest()).decode() for s in secrets]
    return " ".join(f"v1,{s}" for s in sigs)


async def send_webhook(
    client: httpx.AsyncClient, recipient: Recipient, body: bytes, default_secrets: tuple[str, ...]
) -> Outcome:
    secrets = recipient.secrets or default_secrets
    if not secrets:
        return failed(ERR_MISSING_SECRET, "no signing secret: give the recipient a secret or set WEBHOOK_SECRET")
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": recipient.webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(recipient.webhook_id, timestamp, body, secrets),
    }
    try:
        response = await client.post(recipient.target, content=body, headers=headers)
    except Exception as exc:  # classified below; anything unexpected propagates from there
        return from_http_error(exc)
    return from_response(response)
