"""The bug-report store: one row per report, with a JSON ``metadata`` object the jobs fill in.

Workers of different queues finish in any order and at the same time, so ``record()`` is one
atomic upsert that sets a single (possibly nested) metadata key and never rewrites the others.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

from jobq import UnrecoverableError

DATABASE_URL = "DATABASE_URL"
REPORTS_TABLE = "JOBQ_REPORTS_TABLE"
REPORTS_POOL_SIZE = "JOBQ_REPORTS_POOL_SIZE"
DEFAULT_URL = "sqlite:///./jobq-reports.db"
DEFAULT_TABLE = "bug_reports"

SEVERITIES = ("low", "medium", "high", "critical")
MAX_TITLE = 500
MAX_DESCRIPTION = 64 * 1024
MAX_URL = 4096
MAX_KEY_DEPTH = 6

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_KEY_PART = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class InvalidReport(UnrecoverableError, ValueError):
    """A report field or metadata key is unusable; retrying cannot help.

    :param field: the wire name of the offending field (``projectId``, ``title``, ``key``...).
    """

    code = "ERR_INVALID_REPORT"

    def __init__(self, field: str, message: str, *, code: str | None = None) -> None:
        super().__init__(f"{field}: {message}", code=code)
        self.field = field


class ReportExists(InvalidReport):
    """``create_report`` was given the id of a report that already exists."""

    code = "ERR_REPORT_EXISTS"


class ProjectMismatch(InvalidReport):
    """``record`` named a project other than the one the report belongs to."""

    code = "ERR_PROJECT_MISMATCH"


def new_report_id() -> str:
    """A fresh report id, usable in job ids and storage keys as is."""
    return uuid.uuid4().hex


def check_id(field: str, value: object) -> str:
    """Ids end up in job ids and storage keys, so only ``[A-Za-z0-9_-]`` (first not ``_-``)."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidReport(
            field, "must be 1-128 characters of A-Z a-z 0-9 _ -, starting with a letter or digit",
            code="ERR_UNSAFE_ID",
        )
    return value


def field_problem(field: str, value: object) -> str | None:
    """What is wrong with a user-supplied report field (``title``, ``description``, ``severity``,
    ``url``), or ``None``."""
    if isinstance(value, str) and not _is_unicode(value):
        return "contains a lone surrogate (\\ud800-\\udfff): not valid Unicode text"
    if field == "title":
        if not isinstance(value, str) or not value.strip():
            return "must be a non-empty string"
        if len(value) > MAX_TITLE:
            return f"must be at most {MAX_TITLE} characters"
    elif field == "description":
        if not isinstance(value, str):
            return "must be a string"
        if len(value) > MAX_DESCRIPTION:
            return f"must be at most {MAX_DESCRIPTION} characters"
    elif field == "severity":
        if value not in SEVERITIES:
            return f"must be one of {', '.join(SEVERITIES)}"
    elif field == "url" and value is not None:
        if not isinstance(value, str) or not value:
            return "must be a non-empty string or null"
        if len(value) > MAX_URL:
            return f"must be at most {MAX_URL} characters"
    return None


def _is_unicode(text: str) -> bool:
    """False if ``text`` holds a lone surrogate, which JSON escapes allow but UTF-8 cannot store."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_fields(*, title: object, description: object, severity: object, url: object) -> None:
    """Validate the user-supplied report fields; raise :class:`InvalidReport` naming the first bad one."""
    fields = {"title": title, "description": description, "severity": severity, "url": url}
    for field, value in fields.items():
        problem = field_problem(field, value)
        if problem:
            raise InvalidReport(field, problem)


def split_key(key: object) -> list[str]:
    """``"integrations.github"`` -> ``["integrations", "github"]``; parts are safe to inline in SQL paths."""
    if not isinstance(key, str):
        raise InvalidReport("key", "must be a string")
    parts = key.split(".")
    if len(parts) > MAX_KEY_DEPTH or not all(_KEY_PART.fullmatch(p) for p in parts):
        raise InvalidReport(
            "key", f"must be up to {MAX_KEY_DEPTH} dot-separated parts of 1-64 characters A-Z a-z 0-9 _ -"
        )
    return parts


def dump_value(value: object) -> str:
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidReport("value", f"is not JSON-serialisable ({exc})") from None


def nest(parts: list[str], value: Any) -> dict[str, Any]:
    """``nest(["a", "b"], 1)`` -> ``{"a": {"b": 1}}``: the metadata of a row that ``record`` creates."""
    out: Any = value
    for part in reversed(parts):
        out = {part: out}
    return out


def utcnow() -> str:
    """Timestamps are ISO 8601 UTC strings with milliseconds; they sort as text."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Backend(Protocol):
    transient_errors: tuple[type[BaseException], ...]

    def insert(self, row: Mapping[str, Any]) -> None: ...
    def transaction(self) -> Any: ...
    def fetch(self, report_id: str) -> dict[str, Any] | None: ...
    def set_metadata(
        self, report_id: str, project_id: str, parts: list[str], value: str, now: str
    ) -> bool: ...
    def delete(self, report_id: str) -> bool: ...
    def close(self) -> None: ...


class ReportStore:
    """Bug reports in SQLite (``sqlite:///path``) or PostgreSQL (``postgresql://...``).

    Thread-safe: SQLite uses one connection per thread (WAL mode, so readers never wait), PostgreSQL a
    connection pool. The table is created on first use.

    :param url: the database URL.
    :param table: the table name (letters, digits, ``_``); lets several stores share one database.
    :param pool_size: most PostgreSQL connections held at once.
    """

    def __init__(self, url: str = DEFAULT_URL, *, table: str = DEFAULT_TABLE, pool_size: int = 10) -> None:
        if not _TABLE.fullmatch(table):
            raise ValueError(f"table name {table!r} must match {_TABLE.pattern}")
        self.url = url
        self.table = table
        self._backend: Backend
        if url.startswith("sqlite:"):
            from .sqlite_store import SqliteBackend

            self._backend = SqliteBackend(url, table)
        elif url.startswith(("postgresql:", "postgres:")):
            from .postgres_store import PostgresBackend

            self._backend = PostgresBackend(url, table, pool_size=pool_size)
        else:
            raise ValueError("DATABASE_URL must start with sqlite:/// or postgresql://")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReportStore:
        """Build from ``DATABASE_URL``, ``JOBQ_REPORTS_TABLE`` and ``JOBQ_REPORTS_POOL_SIZE``."""
        e = os.environ if env is None else env
        return cls(
            e.get(DATABASE_URL) or DEFAULT_URL,
            table=e.get(REPORTS_TABLE) or DEFAULT_TABLE,
            pool_size=int(e.get(REPORTS_POOL_SIZE) or 10),
        )

    def _row(
        self, *, project_id: str, title: str, description: str, severity: str, url: str | None,
        report_id: str | None, jobs: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        check_id("projectId", project_id)
        report_id = new_report_id() if report_id is None else check_id("id", report_id)
        check_fields(title=title, description=description, severity=severity, url=url)
        now = utcnow()
        return {
            "id": report_id, "projectId": project_id, "title": title, "description": description,
            "severity": severity, "url": url, "metadata": {}, "jobs": dict(jobs or {}),
            "createdAt": now, "updatedAt": now,
        }

    def create_report(
        self, *, project_id: str, title: str, description: str = "", severity: str = "medium",
        url: str | None = None, report_id: str | None = None, jobs: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Insert a report and return it as :meth:`get_report` would.

        :param report_id: a caller-chosen id; a new one is generated when ``None``.
        :param jobs: the processing jobs of this report (queue name -> job id, or name -> job id).
        :raises InvalidReport: a field is invalid (``.field`` names it); :class:`ReportExists` for a taken id.
        """
        row = self._row(
            project_id=project_id, title=title, description=description, severity=severity, url=url,
            report_id=report_id, jobs=jobs,
        )
        self._backend.insert(row)
        return row

    @contextmanager
    def pending_report(
        self, *, project_id: str, title: str, description: str = "", severity: str = "medium",
        url: str | None = None, report_id: str | None = None, jobs: Mapping[str, Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Insert a report in a transaction committed only when the ``with`` block exits normally.

        The intake API enqueues the report's jobs inside the block: if enqueueing raises, the row is
        rolled back and nobody ever saw it. Keep the block short: on SQLite it holds the write lock.
        """
        row = self._row(
            project_id=project_id, title=title, description=description, severity=severity, url=url,
            report_id=report_id, jobs=jobs,
        )
        with self._backend.transaction():
            self._backend.insert(row)
            yield row

    def get_report(self, report_id: str) -> dict[str, Any] | None:
        """The report as a dict (``id``, ``projectId``, ``title``, ``description``, ``severity``, ``url``,
        ``metadata``, ``jobs``, ``createdAt``, ``updatedAt``), or ``None``; an unsafe id is simply absent."""
        if not isinstance(report_id, str) or not _ID.fullmatch(report_id):
            return None
        return self._backend.fetch(report_id)

    def record(self, report_id: str, project_id: str, key: str, value: Any) -> None:
        """Atomically set ``metadata[key] = value``; a dotted key (``integrations.github``) sets a nested
        entry, creating the intermediate objects. A missing report row is created with an empty title.

        :raises InvalidReport: unsafe id, bad key, value not JSON; :class:`ProjectMismatch` when the
            report belongs to another project.
        """
        check_id("bugReportId", report_id)
        check_id("projectId", project_id)
        parts = split_key(key)
        if not self._backend.set_metadata(report_id, project_id, parts, dump_value(value), utcnow()):
            raise ProjectMismatch("projectId", f"report {report_id} belongs to another project")

    @property
    def transient_errors(self) -> tuple[type[BaseException], ...]:
        """Exceptions meaning "the database is unreachable or busy", worth a 503 and a retry."""
        return self._backend.transient_errors

    def delete_report(self, report_id: str) -> bool:
        """Delete a report; ``True`` when it existed."""
        if not isinstance(report_id, str) or not _ID.fullmatch(report_id):
            return False
        return self._backend.delete(report_id)

    def close(self) -> None:
        """Close every connection; the store is unusable afterwards."""
        self._backend.close()

    def __enter__(self) -> ReportStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        scheme = self.url.split(":", 1)[0]
        return f"ReportStore({scheme}, table={self.table!r})"
