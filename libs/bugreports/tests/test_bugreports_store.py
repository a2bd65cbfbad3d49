from __future__ import annotations

import threading

import pytest
from jobq import UnrecoverableError
from jobq_bugreports.store import InvalidReport, ProjectMismatch, ReportExists, ReportStore

pytestmark = pytest.mark.timeout(60)


def test_create_and_get(store: ReportStore) -> None:
    created = store.create_report(
        project_id="proj-1", title="Broken button", description="nothing happens", severity="high",
        url="https://example.test/checkout", jobs={"screenshots": "screenshot-x"},
    )
    got = store.get_report(created["id"])
    assert got == created
    assert got["metadata"] == {} and got["jobs"] == {"screenshots": "screenshot-x"}
    assert got["createdAt"].endswith("Z")
    assert store.get_report("missing") is None
    assert store.get_report("../etc") is None


def test_create_with_id_and_duplicate(store: ReportStore) -> None:
    store.create_report(project_id="p", title="t", report_id="bug-123")
    with pytest.raises(ReportExists) as exc:
        store.create_report(project_id="p", title="other", report_id="bug-123")
    assert exc.value.field == "id"
    assert store.get_report("bug-123")["title"] == "t"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"project_id": "a/b", "title": "t"}, "projectId"),
        ({"project_id": "p", "title": ""}, "title"),
        ({"project_id": "p", "title": "x" * 501}, "title"),
        ({"project_id": "p", "title": "t", "severity": "urgent"}, "severity"),
        ({"project_id": "p", "title": "t", "description": 3}, "description"),
        ({"project_id": "p", "title": "t", "url": ""}, "url"),
        ({"project_id": "p", "title": "t", "report_id": "../x"}, "id"),
    ],
)
def test_invalid_fields_are_named(store: ReportStore, fields: dict, field: str) -> None:
    with pytest.raises(InvalidReport) as exc:
        store.create_report(**fields)
    assert exc.value.field == field
    assert isinstance(exc.value, UnrecoverableError)


def test_record_sets_nested_keys_and_keeps_others(store: ReportStore) -> None:
    r = store.create_report(project_id="p", title="t")
    store.record(r["id"], "p", "screenshot", {"originalUrl": "s3://a", "width": 10})
    store.record(r["id"], "p", "integrations.github", {"externalId": "42"})
    store.record(r["id"], "p", "integrations.jira", {"externalId": "J-1"})
    store.record(r["id"], "p", "integrations.github", {"externalId": "43"})
    got = store.get_report(r["id"])
    assert got["metadata"] == {
        "screenshot": {"originalUrl": "s3://a", "width": 10},
        "integrations": {"github": {"externalId": "43"}, "jira": {"externalId": "J-1"}},
    }
    assert got["title"] == "t"
    assert got["updatedAt"] >= got["createdAt"]


def test_record_replaces_a_scalar_parent(store: ReportStore) -> None:
    r = store.create_report(project_id="p", title="t")
    store.record(r["id"], "p", "a", 1)
    store.record(r["id"], "p", "a.b.c", [1, "two", None])
    assert store.get_report(r["id"])["metadata"] == {"a": {"b": {"c": [1, "two", None]}}}


def test_record_creates_missing_row(store: ReportStore) -> None:
    store.record("bug-9", "proj-9", "replay.replayUrl", "file:///r/metadata.json")
    got = store.get_report("bug-9")
    assert got["projectId"] == "proj-9" and got["title"] == ""
    assert got["metadata"] == {"replay": {"replayUrl": "file:///r/metadata.json"}}


def test_record_refuses_other_project_and_bad_input(store: ReportStore) -> None:
    r = store.create_report(project_id="p", title="t")
    with pytest.raises(ProjectMismatch):
        store.record(r["id"], "other", "x", 1)
    with pytest.raises(InvalidReport) as exc:
        store.record(r["id"], "p", "a..b", 1)
    assert exc.value.field == "key"
    with pytest.raises(InvalidReport) as exc:
        store.record(r["id"], "p", "a", float("nan"))
    assert exc.value.field == "value"
    with pytest.raises(InvalidReport) as exc:
        store.record("a'b", "p", "a", 1)
    assert exc.value.field == "bugReportId" and exc.value.code == "ERR_UNSAFE_ID"
    assert store.get_report(r["id"])["metadata"] == {}


def test_concurrent_records_on_one_report_all_survive(store_url: tuple[str, str]) -> None:
    """Workers in separate threads (separate connections) record different keys at once."""
    url, table = store_url
    stores = [ReportStore(url, table=table) for _ in range(2)]
    try:
        stores[0].create_report(project_id="p", title="t", report_id="race")
        barrier = threading.Barrier(8)
        errors: list[BaseException] = []

        def work(n: int) -> None:
            s = stores[n % 2]
            try:
                barrier.wait(timeout=10)
                for i in range(10):
                    s.record("race", "p", f"k{n}.i{i}", n * 100 + i)
                    s.record("race", "p", f"flat{n}_{i}", True)
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not errors
        meta = stores[1].get_report("race")["metadata"]
        for n in range(8):
            assert meta[f"k{n}"] == {f"i{i}": n * 100 + i for i in range(10)}
            assert all(meta[f"flat{n}_{i}"] is True for i in range(10))
    finally:
        for s in stores:
            s.close()


def test_concurrent_record_creating_the_row(store_url: tuple[str, str]) -> None:
    """Two workers racing to create the same missing row: one inserts, the other updates."""
    url, table = store_url
    stores = [ReportStore(url, table=table) for _ in range(4)]
    try:
        barrier = threading.Barrier(4)
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                barrier.wait(timeout=10)
                stores[n].record("fresh", "p", f"key{n}", n)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not errors
        assert stores[0].get_report("fresh")["metadata"] == {f"key{n}": n for n in range(4)}
    finally:
        for s in stores:
            s.close()


def test_pending_report_commits_only_on_success(store: ReportStore) -> None:
    with pytest.raises(RuntimeError), store.pending_report(project_id="p", title="t", report_id="gone"):
        raise RuntimeError("enqueue failed")
    assert store.get_report("gone") is None
    with store.pending_report(project_id="p", title="t", report_id="kept") as row:
        assert row["id"] == "kept"
    assert store.get_report("kept")["title"] == "t"


def test_pending_report_is_invisible_until_commit(store_url: tuple[str, str]) -> None:
    url, table = store_url
    writer, reader = ReportStore(url, table=table), ReportStore(url, table=table)
    try:
        seen: list[object] = []
        with writer.pending_report(project_id="p", title="t", report_id="pending"):
            t = threading.Thread(target=lambda: seen.append(reader.get_report("pending")))
            t.start()
            t.join(timeout=10)
        assert seen == [None]
        assert reader.get_report("pending") is not None
    finally:
        writer.close()
        reader.close()


def test_record_during_pending_report_waits_for_commit(store_url: tuple[str, str]) -> None:
    """A fast worker recording on a report the API has not committed yet waits for the commit
    and then keeps both the report's fields and its own metadata."""
    url, table = store_url
    api, worker = ReportStore(url, table=table), ReportStore(url, table=table)
    try:
        errors: list[BaseException] = []

        def record() -> None:
            try:
                worker.record("fast", "p", "screenshot", {"originalUrl": "u"})
            except BaseException as exc:
                errors.append(exc)

        with api.pending_report(project_id="p", title="Real title", report_id="fast"):
            t = threading.Thread(target=record)
            t.start()
            if url.startswith("postgresql"):
                import psycopg
                from jobq.testing import wait_until

                def waiting_on_lock() -> bool:
                    with psycopg.connect(url) as conn:
                        rows = conn.execute("SELECT count(*) FROM pg_stat_activity "
                                            "WHERE wait_event_type = 'Lock' AND query LIKE %s",
                                            (f"%INSERT INTO {table}%",)).fetchone()
                    return rows[0] > 0

                wait_until(waiting_on_lock, timeout=10, message="the worker to wait on the row lock")
        t.join(timeout=30)
        assert not errors
        got = api.get_report("fast")
        assert got["title"] == "Real title" and got["metadata"] == {"screenshot": {"originalUrl": "u"}}
    finally:
        api.close()
        worker.close()


def test_delete(store: ReportStore) -> None:
    r = store.create_report(project_id="p", title="t")
    assert store.delete_report(r["id"]) is True
    assert store.delete_report(r["id"]) is False
    assert store.get_report(r["id"]) is None


def test_from_env(tmp_path) -> None:
    s = ReportStore.from_env(
        {"DATABASE_URL": f"sqlite:///{tmp_path}/sub/r.db", "JOBQ_REPORTS_TABLE": "my_reports"}
    )
    try:
        assert s.table == "my_reports"
        s.create_report(project_id="p", title="t", report_id="x")
        assert (tmp_path / "sub" / "r.db").exists()
        assert "sqlite" in repr(s)
    finally:
        s.close()
    with pytest.raises(ValueError):
        ReportStore("mysql://x")
    with pytest.raises(ValueError):
        ReportStore(f"sqlite:///{tmp_path}/r.db", table="x; drop")


def test_postgres_repr_hides_credentials(pg_table: str) -> None:
    with ReportStore("postgresql://postgres:s3cret@127.0.0.1:5432/test", table=pg_table) as s:
        assert "s3cret" not in repr(s)
        assert s.create_report(project_id="p", title="t")["projectId"] == "p"
