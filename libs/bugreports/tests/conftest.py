"""Fixtures: a report store on SQLite (tmp_path) and on the local PostgreSQL, each in its own table."""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from jobq_bugreports.store import ReportStore
from jobq_bugreports.testing import serve

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _drop_pg_table(table: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[tuple[str, str]]:
    """(database URL, table name) for a throwaway store; the PostgreSQL table is dropped afterwards."""
    table = f"test_reports_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'reports.db'}", table
        return
    yield POSTGRES_URL, table
    _drop_pg_table(table)


@pytest.fixture
def pg_table() -> Iterator[str]:
    """A unique PostgreSQL table name, dropped afterwards."""
    table = f"test_reports_{uuid.uuid4().hex[:12]}"
    yield table
    _drop_pg_table(table)


@pytest.fixture
def store(store_url: tuple[str, str]) -> Iterator[ReportStore]:
    url, table = store_url
    s = ReportStore(url, table=table)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path) -> Iterator[ReportStore]:
    """A store on each backend, for the tests worth running against both."""
    table = f"test_reports_{uuid.uuid4().hex[:12]}"
    url = f"sqlite:///{tmp_path / 'reports.db'}" if request.param == "sqlite" else POSTGRES_URL
    s = ReportStore(url, table=table)
    try:
        yield s
    finally:
        s.close()
        if request.param == "postgres":
            _drop_pg_table(table)


def count_rows(store: ReportStore) -> int:
    """Rows in the store's table, read behind the store's back (no API to list reports)."""
    if store.url.startswith("sqlite"):
        import sqlite3

        from jobq_bugreports.sqlite_store import sqlite_path

        with sqlite3.connect(sqlite_path(store.url)) as conn:
            return conn.execute(f"SELECT count(*) FROM {store.table}").fetchone()[0]
    import psycopg

    with psycopg.connect(store.url) as conn:
        return conn.execute(f"SELECT count(*) FROM {store.table}").fetchone()[0]


@pytest.fixture
def row_count():
    return count_rows


@pytest.fixture
def served():
    return serve


JOBQ = str(Path(sys.executable).with_name("jobq"))


@contextmanager
def jobq_api(env: dict[str, str], **popen: Any) -> Iterator[tuple[subprocess.Popen, str, list[str]]]:
    """Run ``jobq api --port 0`` with ``env``; yield the process, its base URL and the stderr lines
    read so far (the list keeps growing). SIGTERM afterwards."""
    # No trace exporter: with none listening, its retries would hold up every shutdown for 10 s.
    env = {"OTEL_SDK_DISABLED": "true", **env}
    proc = subprocess.Popen([JOBQ, "api", "--host", "127.0.0.1", "--port", "0"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **popen)
    lines: list[str] = []
    found: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if m := re.search(r"running on (http://127\.0\.0\.1:\d+)", line):
                found.put(m.group(1))

    threading.Thread(target=pump, daemon=True).start()
    try:
        try:
            base = found.get(timeout=30)
        except queue.Empty:
            raise AssertionError("jobq api did not start:\n" + "".join(lines)) from None
        yield proc, base, lines
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def api_process():
    """:func:`jobq_api`: ``with api_process(env) as (proc, base_url, stderr_lines): ...``."""
    return jobq_api
