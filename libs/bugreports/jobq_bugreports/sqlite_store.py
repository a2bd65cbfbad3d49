"""SQLite backend of the report store: one connection per thread, WAL, writes under ``BEGIN IMMEDIATE``."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .store import ReportExists, nest

BUSY_TIMEOUT_MS = 30_000

COLUMNS = "id, project_id, title, description, severity, url, metadata, jobs, created_at, updated_at"


def sqlite_path(url: str) -> str:
    """``sqlite:///rel/path`` -> ``rel/path``; ``sqlite:////abs/path`` -> ``/abs/path``."""
    path = url.removeprefix("sqlite:").removeprefix("//").removeprefix("/")
    if not path or path == ":memory:":
        raise ValueError("the report store needs a file: sqlite:///path/to/reports.db")
    return path


def _path_expr(parts: list[str]) -> str:
    # Key parts are validated to [A-Za-z0-9_-], so quoting them inline is safe.
    return "'$" + "".join(f'."{p}"' for p in parts) + "'"


def set_expr(parts: list[str]) -> str:
    """SQL for ``metadata`` with ``parts`` set to the bound value, turning non-object parents into ``{}``."""
    expr = "metadata"
    for depth in range(1, len(parts)):
        path = _path_expr(parts[:depth])
        expr = (
            f"(CASE WHEN json_type({expr}, {path}) = 'object' THEN {expr} "
            f"ELSE json_set({expr}, {path}, json('{{}}')) END)"
        )
    return f"json_set({expr}, {_path_expr(parts)}, json(?))"


class SqliteBackend:
    transient_errors: tuple[type[BaseException], ...] = (sqlite3.OperationalError,)

    def __init__(self, url: str, table: str) -> None:
        self.path = sqlite_path(url)
        self.table = table
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        parent = Path(self.path).parent
        parent.mkdir(parents=True, exist_ok=True)
        self._create_schema()

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError("the report store is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # Autocommit mode: every transaction is explicit, so locks are taken when we say so.
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._local.conn = conn
            self._local.depth = 0
            with self._lock:
                self._connections.append(conn)
        return conn

    def _create_schema(self) -> None:
        conn = self._conn()
        conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {self.table} (
                id TEXT PRIMARY KEY,
                project_id TEXT NOT NULL,
                title TEXT NOT NULL DEFAULT '',
                description TEXT NOT NULL DEFAULT '',
                severity TEXT NOT NULL DEFAULT 'medium',
                url TEXT,
                metadata TEXT NOT NULL DEFAULT '{{}}',
                jobs TEXT NOT NULL DEFAULT '{{}}',
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )"""
        )
        conn.execute(
            f"CREATE INDEX IF NOT EXISTS {self.table}_project_created "
            f"ON {self.table} (project_id, created_at)"
        )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` takes the write lock up front, so two writers queue on the busy timeout
        instead of one failing with SQLITE_BUSY when a read transaction tries to upgrade."""
        conn = self._conn()
        if self._local.depth:
            self._local.depth += 1
            try:
                yield conn
            finally:
                self._local.depth -= 1
            return
        conn.execute("BEGIN IMMEDIATE")
        self._local.depth = 1
        try:
            yield conn
        except BaseException:
            self._local.depth = 0
            conn.execute("ROLLBACK")
            raise
        self._local.depth = 0
        conn.execute("COMMIT")

    def insert(self, row: Mapping[str, Any]) -> None:
        with self.transaction() as conn:
            try:
                conn.execute(
                    f"INSERT INTO {self.table} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        row["id"], row["projectId"], row["title"], row["description"], row["severity"],
                        row["url"], json.dumps(row["metadata"]), json.dumps(row["jobs"]),
                        row["createdAt"], row["updatedAt"],
                    ),
                )
            except sqlite3.IntegrityError:
                raise ReportExists("id", f"report {row['id']} already exists") from None

    def fetch(self, report_id: str) -> dict[str, Any] | None:
        cur = self._conn().execute(f"SELECT {COLUMNS} FROM {self.table} WHERE id = ?", (report_id,))
        r = cur.fetchone()
        if r is None:
            return None
        return {
            "id": r[0], "projectId": r[1], "title": r[2], "description": r[3], "severity": r[4],
            "url": r[5], "metadata": json.loads(r[6]), "jobs": json.loads(r[7]),
            "createdAt": r[8], "updatedAt": r[9],
        }

    def set_metadata(self, report_id: str, project_id: str, parts: list[str], value: str, now: str) -> bool:
        initial = json.dumps(nest(parts, json.loads(value)))
        with self.transaction() as conn:
            cur = conn.execute(
                f"""INSERT INTO {self.table} (id, project_id, metadata, created_at, updated_at)
                    VALUES (?, ?, json(?), ?, ?)
                    ON CONFLICT (id) DO UPDATE
                    SET metadata = {set_expr(parts)}, updated_at = excluded.updated_at
                    WHERE project_id = excluded.project_id""",
                (report_id, project_id, initial, now, now, value),
            )
            return cur.rowcount == 1

    def delete(self, report_id: str) -> bool:
        with self.transaction() as conn:
            return conn.execute(f"DELETE FROM {self.table} WHERE id = ?", (report_id,)).rowcount == 1

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._connections = self._connections, []
        for conn in conns:
            conn.close()
