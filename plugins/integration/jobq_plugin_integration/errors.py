"""Reason codes of the integrations queue, as exceptions platforms raise.

    UnrecoverableError (never retried)
    ├── AuthFailed            ERR_AUTH                 401/403, revoked or wrong token
    ├── TargetNotFound        ERR_NOT_FOUND            project, repo, team, channel or issue missing
    ├── PlatformRejected      ERR_PLATFORM_REJECTED    other 4xx: the vendor refused the content
    ├── InvalidField          ERR_INVALID_PAYLOAD      credentials/config/report field unusable
    ├── UnknownPlatform       ERR_UNKNOWN_PLATFORM     names the installed platforms
    ├── PlatformBroken        ERR_PLATFORM_BROKEN      installed but failed to load
    └── ReportNotFound        ERR_REPORT_NOT_FOUND     no content in the payload nor in the store
    JobFailed (retried with backoff)
    ├── PlatformUnavailable   ERR_PLATFORM_UNAVAILABLE 5xx
    ├── PlatformTimeout       ERR_PLATFORM_TIMEOUT     connect/read/write timeout
    ├── NetworkError          ERR_NETWORK              refused, reset, response lost
    └── ProtocolError         ERR_PLATFORM_PROTOCOL    a 2xx answer we cannot read

Rate limits raise :class:`jobq.Retry` instead: the job is rescheduled without spending an attempt.
Messages never hold credentials: platforms build them from fixed text and the vendor's own
error message, which the pipeline redacts again before the job records it.
"""

from __future__ import annotations

from jobq import JobFailed, UnrecoverableError


class AuthFailed(UnrecoverableError):
    code = "ERR_AUTH"


class TargetNotFound(UnrecoverableError):
    code = "ERR_NOT_FOUND"


class PlatformRejected(UnrecoverableError):
    code = "ERR_PLATFORM_REJECTED"


class InvalidField(UnrecoverableError, ValueError):
    """A field of ``credentials``, ``config`` or ``report`` is unusable; ``field`` is its wire path."""

    code = "ERR_INVALID_PAYLOAD"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class UnknownPlatform(UnrecoverableError):
    code = "ERR_UNKNOWN_PLATFORM"


class PlatformBroken(UnrecoverableError):
    code = "ERR_PLATFORM_BROKEN"


class ReportNotFound(UnrecoverableError):
    code = "ERR_REPORT_NOT_FOUND"


class PlatformUnavailable(JobFailed):
    code = "ERR_PLATFORM_UNAVAILABLE"


class PlatformTimeout(JobFailed):
    code = "ERR_PLATFORM_TIMEOUT"


class NetworkError(JobFailed):
    code = "ERR_NETWORK"


class ProtocolError(JobFailed):
    code = "ERR_PLATFORM_PROTOCOL"
