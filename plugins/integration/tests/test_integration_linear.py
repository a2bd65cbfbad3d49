"""Linear end to end against a fake Linear that validates every document with Linear's schema."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from jobq import Retry
from jobq_plugin_integration.errors import AuthFailed, NetworkError, PlatformUnavailable, TargetNotFound
from jobq_plugin_integration.platforms.linear import issue_uuid
from jobq_plugin_integration.testing import FakeLinear

KEY = "lin_api_testkey"


def job(linear: FakeLinear, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "bugReportId": "b1", "projectId": "p1", "platform": "linear", "credentials": {"apiKey": KEY},
        "config": {"teamId": "team-eng", "apiUrl": linear.api_url},
        "report": {"title": "Search returns nothing", "description": "Typing *any* query shows no results.",
                   "severity": "high", "replayUrl": "https://app.example/replays/9"},
    }
    data.update(over)
    return data


def test_create_then_update(linear: FakeLinear, sync: Any, store: Any) -> None:
    first = sync(job(linear))
    assert first == {"platform": "linear", "externalId": "ENG-1",
                     "externalUrl": "https://linear.example/issue/ENG-1", "status": "created"}
    (issue,) = linear.issues.values()
    assert uuid.UUID(issue["id"]).version == 4
    assert issue["priority"] == 2 and issue["title"] == "Search returns nothing"
    assert "<https://app.example/replays/9>" in issue["description"]
    assert linear.exchanges[0].request.headers["authorization"] == KEY
    assert store.get_report("b1")["metadata"]["integrations"]["linear"]["ref"] == {"issueId": issue["id"]}

    second = sync(job(linear, report={"title": "Search returns nothing on mobile"}), job_id="job-2")
    assert second == {**first, "status": "updated"}
    assert issue["title"] == "Search returns nothing on mobile"
    assert [linear.operation_of(e.request) for e in linear.exchanges] == ["issueCreate", "issueUpdate"]


def test_issue_id_is_stable_per_report_and_team() -> None:
    a = issue_uuid("jobq-1", "https://api.linear.app/graphql#team=t1")
    assert a == issue_uuid("jobq-1", "https://api.linear.app/graphql#team=t1")
    assert a != issue_uuid("jobq-1", "https://api.linear.app/graphql#team=t2")
    assert a != issue_uuid("jobq-2", "https://api.linear.app/graphql#team=t1")
    assert uuid.UUID(a).version == 4 and uuid.UUID(a).variant == uuid.RFC_4122


def test_lost_response_retry_reads_back_the_same_issue(linear: FakeLinear, sync: Any) -> None:
    linear.lose_response_next(operation="graphql")
    with pytest.raises(NetworkError):
        sync(job(linear))
    assert len(linear.issues) == 1
    result = sync(job(linear), attempt=2)
    assert result["externalId"] == "ENG-1" and result["status"] == "created"
    assert len(linear.issues) == 1
    ops = [linear.operation_of(e.request) for e in linear.exchanges]
    assert ops == ["issueCreate", "issueCreate", "issue"]
    assert linear.exchanges[1].response.json["errors"][0]["message"] == "Entity already exists"


def test_bad_key_is_err_auth(linear: FakeLinear, sync: Any) -> None:
    with pytest.raises(AuthFailed, match="You need to authenticate"):
        sync(job(linear, credentials={"apiKey": "lin_api_wrong"}))


def test_unknown_team_is_not_found(linear: FakeLinear, sync: Any) -> None:
    with pytest.raises(TargetNotFound, match="team nope not found"):
        sync(job(linear, config={"teamId": "nope", "apiUrl": linear.api_url}))
    assert not linear.issues


def test_rate_limit_uses_the_reset_header(linear: FakeLinear, sync: Any) -> None:
    linear.rate_limit_next(reset_in=20)
    with pytest.raises(Retry) as info:
        sync(job(linear))
    assert 15 <= info.value.delay <= 21
    linear.fail_next(429, json={"errors": [{"message": "Too many requests"}]}, headers={"Retry-After": "4"})
    with pytest.raises(Retry) as info:
        sync(job(linear))
    assert info.value.delay == 4


def test_server_error_is_retryable(linear: FakeLinear, sync: Any) -> None:
    linear.fail_next(500, json={"errors": [{"message": "Internal server error",
                                            "extensions": {"type": "internal error"}}]})
    with pytest.raises(PlatformUnavailable) as info:
        sync(job(linear))
    assert info.value.retryable


def test_deleted_issue_fails_update_clearly(linear: FakeLinear, sync: Any) -> None:
    sync(job(linear))
    linear.issues.clear()
    with pytest.raises(TargetNotFound, match="ENG-1 recorded for this report is gone"):
        sync(job(linear), job_id="job-2")
