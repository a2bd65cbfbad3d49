"""GitHub Issues end to end against a fake GitHub (github.com and Enterprise layouts)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from jobq import Retry
from jobq_plugin_integration.errors import AuthFailed, NetworkError, PlatformRejected, TargetNotFound
from jobq_plugin_integration.pipeline import marker_for
from jobq_plugin_integration.testing import FakeGitHub

TOKEN = "ghp_test_token"


def job(api_url: str, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "bugReportId": "b1", "projectId": "p1", "platform": "github", "credentials": {"token": TOKEN},
        "config": {"owner": "octo", "repo": "app", "apiUrl": api_url},
        "report": {"title": "Crash on save", "description": "cc @octocat, <!-- jobq-0000 --> it crashes",
                   "severity": "critical", "url": "https://app.example/editor"},
    }
    data.update(over)
    return data


def test_create_then_update(github: FakeGitHub, sync: Any, store: Any) -> None:
    first = sync(job(github.url))
    assert first == {"platform": "github", "externalId": "1",
                     "externalUrl": "https://github.example/octo/app/issues/1", "status": "created"}
    issue = github.issues["octo/app"][1]
    assert issue["title"] == "Crash on save"
    body = issue["body"]
    assert f"<!-- {marker_for('p1', 'b1')} -->" in body
    assert "**Severity:** critical" in body and "<https://app.example/editor>" in body
    assert "@\u200boctocat" in body, "a reporter's @mention must not notify anyone"
    assert "&lt;!-- jobq-0000 --&gt;" in body, "a reporter cannot plant a marker"
    req = github.calls("issues/create")[0].request
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert req.headers["x-github-api-version"] == "2022-11-28"
    assert store.get_report("b1")["metadata"]["integrations"]["github"]["ref"]["number"] == 1

    second = sync(job(github.url, report={"title": "Crash on save (Safari only)"}), job_id="job-2")
    assert second == {**first, "status": "updated"}
    assert github.issues["octo/app"][1]["title"] == "Crash on save (Safari only)"
    assert len(github.issues["octo/app"]) == 1


def test_enterprise_api_base(github_enterprise: FakeGitHub, sync: Any) -> None:
    api = github_enterprise.api_url
    assert api.endswith("/api/v3")
    result = sync(job(api))
    assert result["externalId"] == "1"
    assert github_enterprise.calls("issues/create")[0].request.path == "/api/v3/repos/octo/app/issues"


def test_unknown_repo_is_a_clear_not_found(github: FakeGitHub, sync: Any) -> None:
    with pytest.raises(TargetNotFound) as info:
        sync(job(github.url, config={"owner": "octo", "repo": "missing", "apiUrl": github.url}))
    assert info.value.code == "ERR_NOT_FOUND" and "octo/missing" in str(info.value)


def test_bad_token_is_err_auth(github: FakeGitHub, sync: Any) -> None:
    with pytest.raises(AuthFailed, match="HTTP 401"):
        sync(job(github.url, credentials={"token": "ghp_wrong"}))


def test_forbidden_without_rate_limit_is_err_auth(github: FakeGitHub, sync: Any) -> None:
    github.fail_next(403, json={"message": "Resource not accessible by personal access token",
                                "documentation_url": "https://docs.github.com/rest"}, operation="issues/create")
    with pytest.raises(AuthFailed, match="Resource not accessible"):
        sync(job(github.url))


def test_primary_rate_limit_waits_until_reset(github: FakeGitHub, sync: Any) -> None:
    github.rate_limit_next(reset_in=30)
    with pytest.raises(Retry) as info:
        sync(job(github.url))
    assert 25 <= info.value.delay <= 31


def test_secondary_rate_limit_honours_retry_after(github: FakeGitHub, sync: Any) -> None:
    github.rate_limit_next(reset_in=60, secondary=True)
    with pytest.raises(Retry) as info:
        sync(job(github.url))
    assert info.value.delay == 60


def test_validation_error_is_rejected_not_retried(github: FakeGitHub, sync: Any) -> None:
    github.fail_next(422, json={"message": "Validation Failed", "documentation_url": "https://docs.github.com/rest",
                                "errors": [{"resource": "Issue", "code": "invalid", "field": "title"}]},
                     operation="issues/create")
    with pytest.raises(PlatformRejected, match="Validation Failed; title invalid") as info:
        sync(job(github.url))
    assert not info.value.retryable


def test_lost_response_is_adopted_by_marker(github: FakeGitHub, sync: Any) -> None:
    since = time.time() - 1
    github.lose_response_next(operation="issues/create")
    with pytest.raises(NetworkError):
        sync(job(github.url), since=since)
    # someone else's issue created meanwhile must not be mistaken for ours
    sync(job(github.url, bugReportId="other"), job_id="job-other")
    result = sync(job(github.url), attempt=2, since=since)
    assert result["externalId"] == "1" and result["status"] == "created"
    assert len(github.issues["octo/app"]) == 2
    assert len(github.calls("issues/create")) == 2  # ours once, the other report's once
