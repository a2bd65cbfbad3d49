"""Slack incoming webhooks: a Block Kit message POSTed to a URL that only Slack's hosts may serve.

The URL is the credential (anyone holding it can post), so it is named by host only, everywhere.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from jobq.outbound import OutboundPolicy

from .config import SLACK_HOSTS
from .outcome import ERR_DESTINATION_NOT_ALLOWED, Outcome, failed, from_http_error, from_response
from .recipients import Recipient


def slack_url_problem(url: str, policy: OutboundPolicy) -> str | None:
    """Why ``url`` is not an acceptable incoming-webhook URL, or ``None``.

    Slack's hosts over https, or a host the operator allow-listed (tests, Slack-compatible relays).
    """
    u = httpx.URL(url)
    if policy.is_listed(u.host):
        return None
    if u.host not in SLACK_HOSTS:
        return f"host {u.host!r} is not a Slack incoming-webhook host ({', '.join(sorted(SLACK_HOSTS))})"
    if u.scheme != "https":
        return "Slack webhooks must use https"
    return None


async def send_slack(
    client: httpx.AsyncClient, recipient: Recipient, message: dict[str, Any], policy: OutboundPolicy
) -> Outcome:
    problem = slack_url_problem(recipient.target, policy)
    if problem:
        return failed(ERR_DESTINATION_NOT_ALLOWED, problem)
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()
    try:
        response = await client.post(
            recipient.target, content=body, headers={"content-type": "application/json; charset=utf-8"}
        )
    except Exception as exc:  # classified below; anything unexpected propagates from there
        return from_http_error(exc)
    return from_response(response, body_hint=True)
