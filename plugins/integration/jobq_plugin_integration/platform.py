"""What a platform implements, and what the pipeline hands it.

A platform is a :class:`Platform` subclass registered on the ``jobq.integrations`` entry-point
group (the four shipped ones included), so a third-party distribution adds one with no change
here. The pipeline owns validation, the bug-report store, idempotency bookkeeping, redaction and
the HTTP client; a platform only maps a report to its vendor's API.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import httpx
from jobq import RateLimited

from .errors import AuthFailed, PlatformRejected, PlatformUnavailable, ProtocolError, TargetNotFound

if TYPE_CHECKING:
    from .http import PlatformHttp

DEFAULT_RATE_LIMIT_DELAY = 30.0
MAX_RATE_LIMIT_DELAY = 3600.0


async def _no_pace(_target: str, _interval: float) -> None:
    return None


@attrs.frozen(kw_only=True)
class Report:
    """The report's content, merged from the payload and the bug-report store."""

    bug_report_id: str
    project_id: str
    title: str
    description: str = ""
    severity: str = "medium"
    url: str | None = None
    screenshot_url: str | None = None
    replay_url: str | None = None


@attrs.frozen(kw_only=True)
class ExternalIssue:
    """An issue (or message) on the platform.

    :param external_id: what people call it (``BUG-12``, ``42``, ``ENG-7``, a Slack ``ts``).
    :param external_url: where to open it.
    :param ref: whatever else the platform needs to update it later (stored on the bug report).
    """

    external_id: str
    external_url: str
    ref: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Sync:
    """One sync of one report to one platform target, as the platform sees it.

    :param marker: stable for this report (``jobq-<20 hex>``); platforms tag what they create
        with it so a retry can find an issue whose creation response was lost.
    :param attempt: the job's attempt (1 on the first start).
    :param since: Unix time before which no earlier attempt of this job can have created anything.
    :param http: the shared HTTP client, wrapped with this platform's error mapping.
    :param pace: ``await sync.pace(target, interval)`` before a call the vendor limits per target
        (a Slack channel): spaces such calls ``interval`` seconds apart across all workers.
    """

    report: Report
    credentials: Any
    config: Any
    marker: str
    job_id: str
    attempt: int
    since: float
    http: PlatformHttp
    pace: Callable[[str, float], Awaitable[None]] = attrs.field(default=_no_pace, repr=False)


class Platform(abc.ABC):
    """Base class of a platform. Subclasses set the class attributes and implement the coroutines.

    ``credentials_type`` and ``config_type`` are frozen attrs classes with snake_case fields;
    the wire keys are their camelCase names. Mark secret fields with :func:`fields.secret`.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    credentials_type: ClassVar[type]
    config_type: ClassVar[type]

    def target(self, config: Any) -> str:
        """Where issues go (site + project, API + repository...). A report already synced to
        another target gets a new issue rather than an update of the old one."""
        return ""

    def api_urls(self, config: Any) -> list[str]:
        """The base URLs this config makes the worker contact (checked for https up front)."""
        return []

    def secret_values(self, credentials: Any) -> list[str]:
        """Strings to scrub from any text: every string field of the credentials by default."""
        return [v for v in attrs.asdict(credentials).values() if isinstance(v, str)]

    @abc.abstractmethod
    async def create(self, sync: Sync) -> ExternalIssue:
        """Create the issue; raise the :mod:`errors` classes or :class:`jobq.Retry` on failure."""

    @abc.abstractmethod
    async def update(self, sync: Sync, existing: ExternalIssue) -> ExternalIssue:
        """Bring the issue created earlier up to date with the report."""

    async def find_existing(self, sync: Sync) -> ExternalIssue | None:
        """Find an issue an earlier attempt created but could not record (its response was lost).

        Called before every creation; return ``None`` when the platform cannot tell.
        """
        return None

    # --- HTTP error mapping, used by :class:`PlatformHttp`; override for vendor quirks ---

    def error_message(self, response: httpx.Response) -> str:
        """The vendor's own words about a failed request (redacted and shortened by the caller)."""
        try:
            body = response.json()
        except ValueError:
            return response.text.strip()[:300]
        if isinstance(body, dict):
            for key in ("message", "error", "error_description", "errorMessages", "errors"):
                if body.get(key):
                    return str(body[key])
        return str(body)[:300]

    def rate_limit_delay(self, response: httpx.Response) -> float | None:
        """Seconds to wait when ``response`` says "slow down", else ``None``."""
        if response.status_code != 429:
            return None
        delay = retry_after(response.headers)
        if delay is None:
            delay = ratelimit_reset(response.headers)
        return DEFAULT_RATE_LIMIT_DELAY if delay is None else delay

    def raise_for_response(self, response: httpx.Response, *, action: str, not_found: str,
                           redact: Any) -> None:
        """Turn a non-success response into the right error. ``not_found`` words a 404."""
        delay = self.rate_limit_delay(response)
        if delay is not None:
            raise RateLimited(min(delay, MAX_RATE_LIMIT_DELAY),
                              reason=f"{self.name}: rate limited while trying to {action}")
        status = response.status_code
        said = redact(self.error_message(response), 300)
        detail = f" ({said})" if said else ""
        if status in (401, 403):
            what = "refused the credentials" if status == 401 else "denied access with these credentials"
            raise AuthFailed(f"{self.name}: HTTP {status} while trying to {action}: the platform {what}"
                             f"{detail}")
        if status in (404, 410):
            raise TargetNotFound(f"{self.name}: HTTP {status}: {not_found}{detail}")
        if status >= 500 or status in (408, 409, 425):
            raise PlatformUnavailable(f"{self.name}: HTTP {status} while trying to {action}{detail}")
        if 300 <= status < 400:
            raise PlatformRejected(f"{self.name}: HTTP {status} redirect while trying to {action} "
                                   "(check the configured API URL)")
        raise PlatformRejected(f"{self.name}: HTTP {status} while trying to {action}{detail}")


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or ``None``."""
    raw = headers.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def ratelimit_reset(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds until ``X-RateLimit-Reset`` (a Unix time in seconds, or delta-seconds when small)."""
    raw = (headers.get("x-ratelimit-reset") or "").strip()
    try:
        value = float(raw)
    except ValueError:
        return None
    if value > 1e9:
        value -= time.time() if now is None else now
    return max(1.0, value)


def json_body(response: httpx.Response, platform: str, action: str) -> Any:
    """The JSON of a success response, or :class:`ProtocolError` (e.g. an HTML page from a wrong URL)."""
    try:
        return response.json()
    except ValueError:
        raise ProtocolError(f"{platform}: {action} answered HTTP {response.status_code} without JSON "
                            "(is the API URL right?)") from None
