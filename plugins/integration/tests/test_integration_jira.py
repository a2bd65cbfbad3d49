"""Jira Cloud end to end: the pipeline, the production HTTP client and a fake Jira on 127.0.0.1.

Every request is also checked against Atlassian's description and the ADF schema (conftest).
"""

from __future__ import annotations

from typing import Any

import pytest
from jobq import Retry
from jobq_plugin_integration.errors import (
    AuthFailed,
    NetworkError,
    PlatformRejected,
    PlatformTimeout,
    PlatformUnavailable,
    TargetNotFound,
)
from jobq_plugin_integration.pipeline import marker_for
from jobq_plugin_integration.testing import FakeJira

TOKEN = "jira-api-token"


def job(jira: FakeJira, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "bugReportId": "b1", "projectId": "p1", "platform": "jira",
        "credentials": {"email": "dev@example.com", "apiToken": TOKEN},
        "config": {"siteUrl": jira.url, "projectKey": "BUG"},
        "report": {"title": "Checkout button does nothing", "severity": "high",
                   "description": "Steps:\n1. open the cart\n2. click Pay\n\nNothing happens.",
                   "url": "https://shop.example/cart", "screenshotUrl": "https://cdn.example/s.png",
                   "replayUrl": "https://app.example/replays/r1"},
    }
    data.update(over)
    return data


def test_create_then_second_sync_updates(jira: FakeJira, sync: Any, store: Any) -> None:
    first = sync(job(jira))
    assert first == {"platform": "jira", "externalId": "BUG-1", "externalUrl": f"{jira.url}/browse/BUG-1",
                     "status": "created"}
    (issue,) = jira.issues.values()
    assert issue["fields"]["summary"] == "Checkout button does nothing"
    assert issue["fields"]["issuetype"] == {"name": "Bug"}
    assert issue["fields"]["labels"] == [marker_for("p1", "b1")]
    texts = str(issue["fields"]["description"])
    assert "high" in texts and "https://cdn.example/s.png" in texts and "Nothing happens." in texts
    recorded = store.get_report("b1")["metadata"]["integrations"]["jira"]
    assert recorded["externalId"] == "BUG-1" and recorded["ref"] == {"issueId": issue["id"]}

    second = sync(job(jira, report={"title": "Checkout broken on Safari"}), job_id="job-2")
    assert second == {**first, "status": "updated"}
    assert len(jira.issues) == 1
    assert issue["fields"]["summary"] == "Checkout broken on Safari"
    assert [e.operation for e in jira.exchanges] == ["searchIssues", "createIssue", "editIssue"]
    assert jira.calls("editIssue")[0].request.path.endswith(f"/issue/{issue['id']}")


def test_basic_auth_and_default_issue_type(jira: FakeJira, sync: Any) -> None:
    jira.projects["OPS"] = ["Task"]
    with pytest.raises(PlatformRejected, match="issue type 'Bug' is not available in project OPS"):
        sync(job(jira, config={"siteUrl": jira.url, "projectKey": "OPS"}))
    result = sync(job(jira, config={"siteUrl": jira.url, "projectKey": "OPS", "issueType": "Task"}))
    assert result["externalId"] == "OPS-1"
    header = jira.calls("createIssue")[-1].request.headers["authorization"]
    assert header.startswith("Basic ") and TOKEN not in header


def test_wrong_token_fails_at_once_with_err_auth(jira: FakeJira, sync: Any) -> None:
    with pytest.raises(AuthFailed) as info:
        sync(job(jira, credentials={"email": "dev@example.com", "apiToken": "wrong-token-1234"}))
    assert info.value.code == "ERR_AUTH" and not info.value.retryable
    assert "401" in str(info.value)


def test_missing_project_names_it(jira: FakeJira, sync: Any) -> None:
    with pytest.raises(TargetNotFound) as info:
        sync(job(jira, config={"siteUrl": jira.url, "projectKey": "NOPE"}))
    assert info.value.code == "ERR_NOT_FOUND" and "'NOPE'" in str(info.value)
    assert not jira.issues


def test_wrong_site_path_is_not_found(jira: FakeJira, sync: Any) -> None:
    with pytest.raises(TargetNotFound, match="no Jira REST API"):
        sync(job(jira, config={"siteUrl": jira.url + "/wiki", "projectKey": "BUG"}))


def test_rate_limit_reschedules_at_retry_after(jira: FakeJira, sync: Any) -> None:
    jira.fail_next(429, json={"errorMessages": ["Rate limit exceeded."], "errors": {}},
                   headers={"Retry-After": "7"}, operation="createIssue")
    with pytest.raises(Retry) as info:
        sync(job(jira))
    assert info.value.delay == 7
    assert sync(job(jira))["status"] == "created"


def test_server_error_is_retryable(jira: FakeJira, sync: Any) -> None:
    jira.fail_next(503, json={"errorMessages": ["Service unavailable"], "errors": {}}, operation="createIssue")
    with pytest.raises(PlatformUnavailable) as info:
        sync(job(jira))
    assert info.value.retryable and info.value.code == "ERR_PLATFORM_UNAVAILABLE"


def test_lost_response_is_adopted_on_retry(jira: FakeJira, sync: Any, store: Any) -> None:
    jira.lose_response_next(operation="createIssue")
    with pytest.raises(NetworkError) as info:
        sync(job(jira))
    assert info.value.retryable
    assert len(jira.issues) == 1  # Jira did create it
    assert "integrations" not in (store.get_report("b1") or {}).get("metadata", {})

    result = sync(job(jira), attempt=2)
    assert result == {"platform": "jira", "externalId": "BUG-1", "externalUrl": f"{jira.url}/browse/BUG-1",
                      "status": "created"}
    assert len(jira.issues) == 1
    assert len(jira.calls("createIssue")) == 1
    assert store.get_report("b1")["metadata"]["integrations"]["jira"]["externalId"] == "BUG-1"


def test_read_timeout_after_creation_is_adopted(jira: FakeJira, sync: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBQ_INTEGRATION_HTTP_TIMEOUT", "0.3")
    jira.delay_response_next(2.0, operation="createIssue")
    with pytest.raises(PlatformTimeout) as info:
        sync(job(jira))
    assert info.value.code == "ERR_PLATFORM_TIMEOUT" and info.value.retryable
    assert sync(job(jira), attempt=2)["externalId"] == "BUG-1"
    assert len(jira.issues) == 1


def test_deleted_issue_fails_update_clearly(jira: FakeJira, sync: Any) -> None:
    sync(job(jira))
    jira.issues.clear()
    with pytest.raises(TargetNotFound, match="BUG-1 recorded for this report no longer exists"):
        sync(job(jira), job_id="job-2")


def test_new_target_gets_a_new_issue(jira: FakeJira, sync: Any, store: Any) -> None:
    jira.projects["OPS"] = ["Bug"]
    assert sync(job(jira))["externalId"] == "BUG-1"
    moved = sync(job(jira, config={"siteUrl": jira.url, "projectKey": "OPS"}), job_id="job-2")
    assert moved["externalId"] == "OPS-1" and moved["status"] == "created"
    assert store.get_report("b1")["metadata"]["integrations"]["jira"]["externalId"] == "OPS-1"
