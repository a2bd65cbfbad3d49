"""Recipients as the channels use them: deduplicated, each with a stable delivery id and a safe label."""

from __future__ import annotations

import hashlib
from typing import Any

import attrs
from jobq.outbound import describe_url

from .payload import secret_list


@attrs.frozen
class Recipient:
    """One destination of one job.

    :param index: position in the payload's ``recipients`` (first occurrence).
    :param target: the email address or URL.
    :param secrets: the endpoint's own webhook secrets (empty: use ``WEBHOOK_SECRET``).
    :param delivery_id: stable across retries of the job: the delivery record's key, the
        ``webhook-id`` and the email ``Message-ID`` are built from it, so receivers can dedupe.
    :param label: how logs, results and errors name it (URLs lose their path: it holds tokens).
    """

    index: int
    target: str = attrs.field(repr=False)
    secrets: tuple[str, ...] = attrs.field(default=(), repr=False)
    delivery_id: str = ""
    label: str = ""

    @property
    def webhook_id(self) -> str:
        return f"msg_{self.delivery_id}"


def delivery_id(job_id: str, channel: str, target: str) -> str:
    """32 hex characters from the job id, the channel and the normalised target (never the secret)."""
    return hashlib.sha256(f"{job_id}\x00{channel}\x00{target}".encode()).hexdigest()[:32]


def build_recipients(job_id: str, channel: str, raw: list[Any]) -> list[Recipient]:
    """The payload's recipients, each destination once (a repeated one would be notified twice)."""
    out: list[Recipient] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        if isinstance(item, dict):
            target, secrets = (
                item["url"],
                tuple(secret_list(item["secret"]) or ()) if "secret" in item else (),
            )
        else:
            target, secrets = item, ()
        if channel == "email":
            target = target.strip()
            norm = target.lower()
            label = target
        else:
            norm = target
            label = describe_url(target)
        if norm in seen:
            continue
        seen.add(norm)
        out.append(Recipient(i, target, secrets, delivery_id(job_id, channel, norm), f"#{i} {label}"))
    return out
