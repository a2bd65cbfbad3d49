"""Settings, read once from the environment (names as constants, one place)."""

from __future__ import annotations

import os

import attrs

REDIS_URL = "REDIS_URL"
PREFIX = "JOBQ_PREFIX"
LEASE_SECONDS = "JOBQ_LEASE_SECONDS"
STALL_INTERVAL = "JOBQ_STALL_INTERVAL"
RETENTION_COMPLETED = "JOB_RETENTION_COMPLETED"
RETENTION_FAILED = "JOB_RETENTION_FAILED"
RETENTION_COMPLETED_COUNT = "JOB_RETENTION_COMPLETED_COUNT"
RETENTION_FAILED_COUNT = "JOB_RETENTION_FAILED_COUNT"
EVENTS_MAXLEN = "JOBQ_EVENTS_MAXLEN"
MAX_PAYLOAD_BYTES = "JOBQ_MAX_PAYLOAD_BYTES"
CLAIM_CHECK_BYTES = "JOBQ_CLAIM_CHECK_BYTES"
STORAGE_URL = "STORAGE_URL"
STORAGE_PUBLIC_URL = "STORAGE_PUBLIC_URL"
SHUTDOWN_GRACE = "JOBQ_SHUTDOWN_GRACE"
SOCKET_TIMEOUT = "JOBQ_SOCKET_TIMEOUT"
METRICS_PORT = "JOBQ_METRICS_PORT"

DAY = 86400.0


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        from .errors import ConfigError

        raise ConfigError(f"{name}={raw!r} is not a number") from exc


def _hide_password(url: str) -> str:
    from .redaction import redact

    return repr(redact(url))


@attrs.frozen(kw_only=True)
class Settings:
    """Everything the engine reads from the environment.

    :param lease_seconds: how long an active job's lease lasts without a heartbeat; a dead
        worker's jobs are taken back within ``lease_seconds + stall_interval``.
    :param retention_completed_count: the most completed jobs kept per queue (negative: no limit);
        with ``retention_completed`` (age), whichever trims first wins, so Redis memory stays bounded
        however fast jobs arrive. ``retention_failed_count`` likewise for failed jobs.
    :param claim_check_bytes: payloads larger than this go to storage at enqueue and the job
        carries a reference (the handler sees the data as usual).
    """

    redis_url: str = attrs.field(default="redis://127.0.0.1:6379/0", repr=lambda url: _hide_password(url))
    prefix: str = "jobq"
    lease_seconds: float = 30.0
    stall_interval: float = 5.0
    retention_completed: float = 7 * DAY
    retention_failed: float = 30 * DAY
    retention_completed_count: int = 50_000
    retention_failed_count: int = 100_000
    events_maxlen: int = 10_000
    max_payload_bytes: int = 256 * 1024 * 1024
    claim_check_bytes: int = 512 * 1024
    storage_url: str = "./jobq-storage"
    storage_public_url: str | None = None
    shutdown_grace: float = 20.0
    socket_timeout: float = 10.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        e = dict(os.environ if env is None else env)
        d = {a.name: a.default for a in attrs.fields(cls)}
        values: dict[str, object] = dict(
            redis_url=e.get(REDIS_URL) or d["redis_url"],
            prefix=e.get(PREFIX) or d["prefix"],
            lease_seconds=_float(e, LEASE_SECONDS, d["lease_seconds"]),
            stall_interval=_float(e, STALL_INTERVAL, d["stall_interval"]),
            retention_completed=_float(e, RETENTION_COMPLETED, 7) * DAY,
            retention_failed=_float(e, RETENTION_FAILED, 30) * DAY,
            retention_completed_count=int(_float(e, RETENTION_COMPLETED_COUNT, d["retention_completed_count"])),
            retention_failed_count=int(_float(e, RETENTION_FAILED_COUNT, d["retention_failed_count"])),
            events_maxlen=int(_float(e, EVENTS_MAXLEN, d["events_maxlen"])),
            max_payload_bytes=int(_float(e, MAX_PAYLOAD_BYTES, d["max_payload_bytes"])),
            claim_check_bytes=int(_float(e, CLAIM_CHECK_BYTES, d["claim_check_bytes"])),
            storage_url=e.get(STORAGE_URL) or d["storage_url"],
            storage_public_url=e.get(STORAGE_PUBLIC_URL) or None,
            shutdown_grace=_float(e, SHUTDOWN_GRACE, d["shutdown_grace"]),
            socket_timeout=_float(e, SOCKET_TIMEOUT, d["socket_timeout"]),
        )
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
