"""PostgreSQL backend of the report store (psycopg 3 and its pool; the ``postgres`` extra)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

try:
    import psycopg
    from psycopg.types.json import Jsonb
    from psycopg_pool import ConnectionPool
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError('PostgreSQL reports need: pip install "jobq-bugreports[postgres]"') from exc

from jobq import ConfigError

from .store import ReportExists, nest

CONNECT_TIMEOUT = 3  # seconds; libpq takes whole seconds

COLUMNS = "id, project_id, title, description, severity, url, metadata, jobs, created_at, updated_at"


def _text_array(parts: list[str]) -> str:
    # Key parts are validated to [A-Za-z0-9_-], so the array literal can be inlined.
    return "'{" + ",".join(f'"{p}"' for p in parts) + "}'"


def set_expr(table: str, parts: list[str]) -> str:
    """SQL for ``metadata`` with ``parts`` set to the bound value.

    ``jsonb_set`` only creates the last path element, so each missing or non-object parent is first
    set to ``{}``; everything else in the document is left as it is in the locked row.
    """
    expr = f"{table}.metadata"
    for depth in range(1, len(parts)):
        path = _text_array(parts[:depth])
        expr = (
            f"(CASE WHEN jsonb_typeof({expr} #> {path}) = 'object' THEN {expr} "
            f"ELSE jsonb_set({expr}, {path}, '{{}}'::jsonb, true) END)"
        )
    return f"jsonb_set({expr}, {_text_array(parts)}, %s::jsonb, true)"


def _first_line(exc: BaseException) -> str:
    # psycopg's messages can name the host and user, never the password (it is not in the DSN echo).
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class PostgresBackend:
    # PoolTimeout is an OperationalError too.
    transient_errors: tuple[type[BaseException], ...] = (psycopg.OperationalError,)

    def __init__(self, url: str, table: str, *, pool_size: int = 10) -> None:
        self.table = table
        self._local = threading.local()
        try:
            # One direct connection first: a refused or unreachable server fails here in seconds with
            # one line, not after the pool's 30 s wait with a traceback.
            psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT, autocommit=True).close()
        except psycopg.OperationalError as exc:
            raise ConfigError(
                f"DATABASE_URL: cannot reach PostgreSQL within {CONNECT_TIMEOUT} s ({_first_line(exc)})"
            ) from None
        self._pool = ConnectionPool(
            url, min_size=1, max_size=max(1, pool_size),
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
            open=True, name=f"jobq-reports-{table}",
        )
        try:
            self._pool.wait(timeout=CONNECT_TIMEOUT + 1)
            self._create_schema()
        except psycopg.OperationalError as exc:
            self._pool.close()
            raise ConfigError(
                f"DATABASE_URL: cannot reach PostgreSQL within {CONNECT_TIMEOUT} s ({_first_line(exc)})"
            ) from None

    def _create_schema(self) -> None:
        with self._pool.connection() as conn, conn.transaction():
            # Concurrent CREATE TABLE IF NOT EXISTS can still collide in the catalog: serialise it.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"jobq-bugreports:{self.table}",))
            conn.execute(
                f"""CREATE TABLE IF NOT EXISTS {self.table} (
                    id text PRIMARY KEY,
                    project_id text NOT NULL,
                    title text NOT NULL DEFAULT '',
                    description text NOT NULL DEFAULT '',
                    severity text NOT NULL DEFAULT 'medium',
                    url text,
                    metadata jsonb NOT NULL DEFAULT '{{}}',
                    jobs jsonb NOT NULL DEFAULT '{{}}',
                    created_at timestamptz NOT NULL,
                    updated_at timestamptz NOT NULL
                )"""
            )
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS {self.table}_project_created "
                f"ON {self.table} (project_id, created_at)"
            )

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """The connection of the thread's open transaction, else one borrowed from the pool."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            yield conn
            return
        with self._pool.connection() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        if getattr(self._local, "conn", None) is not None:
            with self._local.conn.transaction():
                yield self._local.conn
            return
        with self._pool.connection() as conn, conn.transaction():
            self._local.conn = conn
            try:
                yield conn
            finally:
                self._local.conn = None

    def insert(self, row: Mapping[str, Any]) -> None:
        # No savepoint: inside pending_report() a duplicate id aborts the whole transaction anyway.
        with self._connection() as conn:
            try:
                conn.execute(
                    f"INSERT INTO {self.table} ({COLUMNS}) VALUES ({', '.join(['%s'] * 10)})",
                    (
                        row["id"], row["projectId"], row["title"], row["description"], row["severity"],
                        row["url"], Jsonb(row["metadata"]), Jsonb(row["jobs"]),
                        row["createdAt"], row["updatedAt"],
                    ),
                )
            except psycopg.errors.UniqueViolation:
                raise ReportExists("id", f"report {row['id']} already exists") from None

    def fetch(self, report_id: str) -> dict[str, Any] | None:
        with self._connection() as conn:
            r = conn.execute(f"SELECT {COLUMNS} FROM {self.table} WHERE id = %s", (report_id,)).fetchone()
        if r is None:
            return None
        return {
            "id": r[0], "projectId": r[1], "title": r[2], "description": r[3], "severity": r[4],
            "url": r[5], "metadata": r[6], "jobs": r[7], "createdAt": _iso(r[8]), "updatedAt": _iso(r[9]),
        }

    def set_metadata(self, report_id: str, project_id: str, parts: list[str], value: str, now: str) -> bool:
        initial = json.dumps(nest(parts, json.loads(value)))
        with self._connection() as conn:
            # One statement: the upsert locks the row, so concurrent writers of other keys queue up
            # and each sees the other's committed change.
            cur = conn.execute(
                f"""INSERT INTO {self.table} (id, project_id, metadata, created_at, updated_at)
                    VALUES (%s, %s, %s::jsonb, %s, %s)
                    ON CONFLICT (id) DO UPDATE
                    SET metadata = {set_expr(self.table, parts)}, updated_at = EXCLUDED.updated_at
                    WHERE {self.table}.project_id = EXCLUDED.project_id""",
                (report_id, project_id, initial, now, now, value),
            )
            return cur.rowcount == 1

    def delete(self, report_id: str) -> bool:
        with self._connection() as conn:
            return conn.execute(f"DELETE FROM {self.table} WHERE id = %s", (report_id,)).rowcount == 1

    def close(self) -> None:
        self._pool.close()
