"""Erasure of a report: jobs in every queue (a running one cancelled), stored objects, payloads,
delivery records and the row, on SQLite and PostgreSQL, local storage and S3; a storage failure
leaves a retryable, marked report."""

from __future__ import annotations

import asyncio
import threading

import pytest
from jobq import QueueSpec
from jobq.storage import Storage
from jobq_bugreports.erasure import ErasureIncomplete, erase_report
from jobq_bugreports.store import ReportStore

pytestmark = pytest.mark.timeout(90)


def _seed(store: ReportStore, harness, storage: Storage) -> tuple[str, threading.Event]:
    """A report with a running job, a waiting one with a claim-checked payload, a failed one, stored
    objects, an external issue and delivery records."""
    running, cancelled = threading.Event(), threading.Event()

    async def hold(job):
        running.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    spec = QueueSpec(name="screenshots", handler=hold)
    for name in ("replays", "integrations"):
        harness.manager.specs[name] = QueueSpec(name=name, handler=hold)
    report = store.create_report(project_id="p1", title="t", jobs={
        "screenshots": "screenshot-r", "replays": "replay-r", "integrations": {"github": "integration-github-r"}})
    rid = report["id"]
    harness.start(spec)
    harness.manager.add_job("screenshots", "screenshot-r", {"bugReportId": rid})
    assert running.wait(10)
    harness.manager.add_job("replays", "replay-r", {"events": "x" * 2000}, delay=300)
    harness.manager.add_job("integrations", "integration-github-r", {"credentials": "tok"})
    for key in (f"screenshots/p1/{rid}/original.webp", f"screenshots/p1/{rid}/thumbnail.webp",
                f"replays/p1/{rid}/chunk-001.json.gz", f"replays/p1/{rid}/metadata.json",
                "screenshots/p1/other-report/original.webp"):
        storage.put(key, b"data")
    store.record(rid, "p1", "integrations.github", {"externalId": "7", "externalUrl": "https://github.test/o/r/7",
                                                    "status": "created"})
    store.record(rid, "p1", "notifications.n1.d1", {"recipient": "a@example.test", "status": "delivered"})
    return rid, cancelled


def _check_erased(store, harness, storage, rid, outcome, cancelled):
    assert outcome["erased"] and outcome["jobs"] == 3
    assert outcome["externalIssues"] == [{"platform": "github", "externalId": "7",
                                          "externalUrl": "https://github.test/o/r/7"}]
    assert cancelled.wait(5), "the running handler was not stopped"
    for q, i in (("screenshots", "screenshot-r"), ("replays", "replay-r"), ("integrations", "integration-github-r")):
        assert harness.manager.get_job(q, i) is None
    assert storage.list(f"screenshots/p1/{rid}") == [] and storage.list(f"replays/p1/{rid}") == []
    assert storage.list("_payloads/replays") == []
    assert storage.exists("screenshots/p1/other-report/original.webp")  # another report's objects stay
    assert store.get_report(rid) is None


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path, jobq_s3_optional):
    if request.param == "local":
        return Storage(str(tmp_path / "objects"))
    return Storage(jobq_s3_optional().make_bucket("erasure"))


@pytest.fixture
def jobq_s3_optional(request):
    return lambda: request.getfixturevalue("jobq_s3")


def test_erase_everything(any_store, jobq_harness, storage):
    import attrs

    jobq_harness.settings = attrs.evolve(jobq_harness.settings, claim_check_bytes=500)
    jobq_harness.manager.settings = jobq_harness.settings
    jobq_harness.manager._storage = storage
    rid, cancelled = _seed(any_store, jobq_harness, storage)
    assert len(storage.list("_payloads/replays")) == 1  # the replay job's payload is claim-checked
    outcome = erase_report(any_store, jobq_harness.manager, storage, rid)
    _check_erased(any_store, jobq_harness, storage, rid, outcome, cancelled)
    assert erase_report(any_store, jobq_harness.manager, storage, rid) is None


class FailingDeletes:
    """The real storage, except that deletes fail (a storage outage) while ``broken`` is set."""

    def __init__(self, inner: Storage) -> None:
        self.inner, self.broken = inner, True

    def delete(self, key: str) -> None:
        if self.broken:
            raise OSError("storage unavailable")
        self.inner.delete(key)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_storage_failure_leaves_a_retryable_marked_report(any_store, jobq_harness, tmp_path):
    storage = Storage(str(tmp_path / "objects"))
    jobq_harness.manager._storage = storage
    rid, cancelled = _seed(any_store, jobq_harness, storage)
    flaky = FailingDeletes(storage)
    with pytest.raises(ErasureIncomplete, match="stored objects"):
        erase_report(any_store, jobq_harness.manager, flaky, rid)
    kept = any_store.get_report(rid)
    assert kept["metadata"]["erasure"]["state"] == "pending"  # the record an operator retries from
    assert storage.exists(f"screenshots/p1/{rid}/original.webp")
    flaky.broken = False
    outcome = erase_report(any_store, jobq_harness.manager, flaky, rid)
    assert outcome["jobs"] == 3
    _check_erased(any_store, jobq_harness, storage, rid, outcome, cancelled)


def test_other_project_cannot_erase(any_store, jobq_harness, tmp_path):
    storage = Storage(str(tmp_path / "objects"))
    r = any_store.create_report(project_id="p1", title="t")
    assert erase_report(any_store, jobq_harness.manager, storage, r["id"], project_id="p2") is None
    assert any_store.get_report(r["id"]) is not None


def test_cli_reports_delete(jobq_settings, tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from jobq import QueueManager

    db = f"sqlite:///{tmp_path / 'r.db'}"
    objects = tmp_path / "objects"
    with ReportStore(db) as store:
        r = store.create_report(project_id="p1", title="t", jobs={"replays": "replay-x"})
        store.record(r["id"], "p1", "integrations.jira", {"externalId": "J-1", "externalUrl": "https://j.test/J-1"})
    storage = Storage(str(objects))
    storage.put(f"replays/p1/{r['id']}/metadata.json", b"{}")
    with QueueManager(jobq_settings, [QueueSpec(name="replays", handler=print)]) as m:
        m.add_job("replays", "replay-x", {}, delay=300)
    env = {**os.environ, "DATABASE_URL": db, "STORAGE_URL": str(objects), "REDIS_URL": jobq_settings.redis_url,
           "JOBQ_PREFIX": jobq_settings.prefix}
    jobq = str(Path(sys.executable).with_name("jobq"))
    out = subprocess.run([jobq, "reports", "delete", r["id"], "--json"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["jobs"] == 1 and answer["objects"] == 1 and answer["externalIssues"][0]["externalId"] == "J-1"
    with ReportStore(db) as store:
        assert store.get_report(r["id"]) is None
    with QueueManager(jobq_settings, strict=False) as m:
        assert m.get_job("replays", "replay-x") is None
    again = subprocess.run([jobq, "reports", "delete", r["id"]], capture_output=True, text=True, env=env, timeout=60)
    assert again.returncode == 1 and "no report" in again.stderr
