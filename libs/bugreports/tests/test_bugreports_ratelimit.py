"""Per-project request limits of the intake API: shared by two API servers through the real Redis."""

from __future__ import annotations

from pathlib import Path

import pytest
from jobq.queue import QueueManager
from jobq.testing import wait_until
from jobq_bugreports.api import create_app
from jobq_bugreports.intake import fallback_specs
from jobq_bugreports.projects import ApiKeys, parse_projects
from jobq_bugreports.store import ReportStore

pytestmark = pytest.mark.timeout(60)

KEY1 = "key-one-0123456789abcdef"
KEY2 = "key-two-0123456789abcdef"
PROJECTS = {"proj-1": {"rateLimit": {"requests": 3, "perSeconds": 0.5}}, "proj-2": {}}


@pytest.fixture
def store(tmp_path: Path):
    s = ReportStore(f"sqlite:///{tmp_path / 'api.db'}")
    yield s
    s.close()


def _app(settings, store):
    return create_app(settings=settings, store=store, api_keys=ApiKeys({"proj-1": KEY1, "proj-2": KEY2}),
                      projects=parse_projects(PROJECTS), specs=fallback_specs())


def test_limit_is_shared_by_api_processes_and_answers_429_with_headers(served, jobq_settings, store,
                                                                      row_count) -> None:
    post = {"json": {"title": "Crash"}, "headers": {"X-API-Key": KEY1}}
    with served(_app(jobq_settings, store)) as a, served(_app(jobq_settings, store)) as b:
        first = a.post("/api/v1/reports", **post)
        assert first.status_code == 201
        assert first.headers["RateLimit-Limit"] == "3" and first.headers["RateLimit-Remaining"] == "2"
        assert b.post("/api/v1/reports", **post).status_code == 201
        assert a.post("/api/v1/reports", **post).headers["RateLimit-Remaining"] == "0"
        refused = b.post("/api/v1/reports", **post)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "ERR_RATE_LIMITED"
        assert refused.headers["Retry-After"] == "1" and refused.headers["RateLimit-Remaining"] == "0"
        assert refused.headers["RateLimit-Reset"] == "1"
        assert row_count(store) == 3  # the refused request created nothing
        other = a.post("/api/v1/reports", json={"title": "Fine"}, headers={"X-API-Key": KEY2})
        assert other.status_code == 201 and "RateLimit-Limit" not in other.headers
        # the window rolls: once the oldest request is 0.5 s old, one more gets in
        wait_until(lambda: a.post("/api/v1/reports", **post).status_code == 201, 5, 0.05, "the window to roll")


def test_reports_jobs_are_grouped_by_project(served, jobq_settings, store) -> None:
    projects = parse_projects({"proj-1": {"notifications": [{"type": "email", "recipients": ["a@example.test"]}]}})
    app = create_app(settings=jobq_settings, store=store, api_keys=ApiKeys({"proj-1": KEY1}), projects=projects,
                     specs=fallback_specs())
    with served(app) as client:
        resp = client.post("/api/v1/reports", json={"title": "x"}, headers={"X-API-Key": KEY1})
    assert resp.status_code == 201
    with QueueManager(jobq_settings, strict=False) as qm:
        job = qm.get_job("notifications", resp.json()["jobs"]["notifications"]["email"])
    assert job.group == "proj-1"


@pytest.mark.parametrize("bad, field", [({"requests": 0, "perSeconds": 1}, "requests"),
                                        ({"requests": 5}, "perSeconds"),
                                        ({"requests": 5, "perSeconds": 1, "burst": 2}, "burst"),
                                        ("10/s", "rateLimit")])
def test_bad_rate_limit_names_the_field(bad, field) -> None:
    from jobq import ConfigError

    with pytest.raises(ConfigError, match=field):
        parse_projects({"p": {"rateLimit": bad}})
