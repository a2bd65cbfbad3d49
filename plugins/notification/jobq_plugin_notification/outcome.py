"""What one delivery attempt to one recipient came to, and how HTTP answers map onto it.

``delivered`` and ``failed`` (permanent) are final; ``retry`` sends to that recipient again on the
job's next attempt. Messages never carry a response body that could echo a credential.
"""

from __future__ import annotations

import email.utils
import re
import time
from typing import Literal

import attrs
import httpx
from jobq.outbound import DestinationNotAllowed

Status = Literal["delivered", "failed", "retry"]

ERR_INVALID_RECIPIENT = "ERR_INVALID_RECIPIENT"
ERR_DESTINATION_NOT_ALLOWED = DestinationNotAllowed.code
ERR_DELIVERY_FAILED = "ERR_DELIVERY_FAILED"
ERR_DELIVERY_REJECTED = "ERR_DELIVERY_REJECTED"
ERR_DELIVERY_TIMEOUT = "ERR_DELIVERY_TIMEOUT"
ERR_RATE_LIMITED = "ERR_RATE_LIMITED"
ERR_AUTH = "ERR_AUTH"
ERR_MISSING_SECRET = "ERR_MISSING_SECRET"

DEFAULT_RETRY_AFTER = 30.0
MAX_RETRY_AFTER = 3600.0
_SAFE_BODY = re.compile(r"[a-z][a-z0-9_]{0,63}")


@attrs.frozen
class Outcome:
    """The result for one recipient in one attempt.

    :param retry_after: seconds the destination asked us to wait (HTTP 429), if any.
    :param http_status: the response status, when there was a response.
    """

    status: Status
    code: str = ""
    message: str = ""
    retry_after: float | None = None
    http_status: int | None = None

    @property
    def final(self) -> bool:
        return self.status != "retry"


def delivered(http_status: int | None = None) -> Outcome:
    return Outcome("delivered", http_status=http_status)


def failed(code: str, message: str, http_status: int | None = None) -> Outcome:
    return Outcome("failed", code, message, http_status=http_status)


def retry(code: str, message: str, *, retry_after: float | None = None, http_status: int | None = None) -> Outcome:
    return Outcome("retry", code, message, retry_after=retry_after, http_status=http_status)


def retry_after_seconds(value: str | None, now: float | None = None) -> float:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date, clamped to [1 s, 1 h]."""
    if not value:
        return DEFAULT_RETRY_AFTER
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return DEFAULT_RETRY_AFTER
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return DEFAULT_RETRY_AFTER
    return min(max(seconds, 1.0), MAX_RETRY_AFTER)


def from_response(response: httpx.Response, *, body_hint: bool = False) -> Outcome:
    """Classify an HTTP answer: 2xx delivered; 429 rate-limited; 408 and 5xx retried; other codes final.

    :param body_hint: add the body to the message when it is a short error word (Slack answers
        ``invalid_token``, ``no_service``...); any other body is left out, it may echo a secret.
    """
    status = response.status_code
    if 200 <= status < 300:
        return delivered(status)
    hint = ""
    if body_hint:
        text = response.text.strip()
        if _SAFE_BODY.fullmatch(text):
            hint = f" ({text})"
    if status == 429:
        delay = retry_after_seconds(response.headers.get("retry-after"))
        return retry(
            ERR_RATE_LIMITED,
            f"rate limited (HTTP 429), retry after {delay:.0f}s",
            retry_after=delay,
            http_status=status,
        )
    if status == 408 or status >= 500:
        return retry(ERR_DELIVERY_FAILED, f"HTTP {status}{hint}", http_status=status)
    if 300 <= status < 400:
        return failed(ERR_DELIVERY_REJECTED, f"HTTP {status}: redirects are not followed", http_status=status)
    if status in (401, 403):
        return failed(ERR_AUTH, f"HTTP {status}: the destination refused our credentials{hint}", http_status=status)
    return failed(ERR_DELIVERY_REJECTED, f"HTTP {status}{hint}", http_status=status)


def from_http_error(exc: Exception) -> Outcome:
    """Classify an exception raised while sending over HTTP (the policy's refusal included)."""
    if isinstance(exc, DestinationNotAllowed):
        return failed(ERR_DESTINATION_NOT_ALLOWED, str(exc))
    if isinstance(exc, httpx.TimeoutException):
        return retry(ERR_DELIVERY_TIMEOUT, f"timed out ({type(exc).__name__})")
    if isinstance(exc, httpx.HTTPError):
        detail = str(exc)[:200] or "no detail"
        return retry(ERR_DELIVERY_FAILED, f"{type(exc).__name__}: {detail}")
    raise exc
