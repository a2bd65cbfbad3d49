"""Through a real worker on real Redis (jobq.testing harness): the queue as deployed."""

from __future__ import annotations

from typing import Any

import jobq_plugin_integration
import pytest
from jobq.testing import Harness
from jobq_plugin_integration.testing import FakeGitHub, FakeJira, FakeLinear, FakeSlack


@pytest.fixture
def spec() -> Any:
    (spec,) = jobq_plugin_integration.jobq_queues()
    return spec


def test_queue_spec_matches_the_issue(spec: Any) -> None:
    assert (spec.name, spec.concurrency, spec.retries, spec.timeout) == ("integrations", 10, 3, 120)
    assert spec.secret_fields == ("credentials",) and spec.execution == "async"


def payloads(jira: FakeJira, github: FakeGitHub, linear: FakeLinear, slack: FakeSlack) -> dict[str, dict[str, Any]]:
    return {
        "jira": {"credentials": {"email": "dev@example.com", "apiToken": jira.api_token},
                 "config": {"siteUrl": jira.url, "projectKey": "BUG"}},
        "github": {"credentials": {"token": github.token},
                   "config": {"owner": "octo", "repo": "app", "apiUrl": github.url}},
        "linear": {"credentials": {"apiKey": linear.api_key},
                   "config": {"teamId": "team-eng", "apiUrl": linear.api_url}},
        "slack": {"credentials": {"botToken": slack.bot_token},
                  "config": {"channel": "#bugs", "apiUrl": slack.api_url}},
    }


def test_every_platform_creates_then_updates(jobq_harness: Harness, spec: Any, store: Any, jira: FakeJira,
                                             github: FakeGitHub, linear: FakeLinear, slack: FakeSlack) -> None:
    h = jobq_harness
    h.start(spec)
    per_platform = payloads(jira, github, linear, slack)
    ids = {}
    for platform, extra in per_platform.items():
        data = {"bugReportId": f"r-{platform}", "projectId": "p1", "platform": platform,
                "report": {"title": f"Broken on {platform}", "severity": "medium"}, **extra}
        ids[platform] = h.manager.add_job("integrations", f"create-{platform}", data).id
    created = {p: h.wait("integrations", job_id) for p, job_id in ids.items()}
    for platform, job in created.items():
        assert job.state == "completed", (platform, job.failure)
        assert job.result["platform"] == platform and job.result["status"] == "created"
        assert job.attempts == 1
        record = store.get_report(f"r-{platform}")["metadata"]["integrations"][platform]
        assert record["externalId"] == job.result["externalId"] and record["jobId"] == job.id
    for platform, extra in per_platform.items():
        data = {"bugReportId": f"r-{platform}", "projectId": "p1", "platform": platform,
                "report": {"title": f"Still broken on {platform}"}, **extra}
        job = h.run(spec, data, job_id=f"update-{platform}")
        assert job.state == "completed", (platform, job.failure)
        assert job.result == {**created[platform].result, "status": "updated"}
    assert len(jira.issues) == 1 and len(github.issues["octo/app"]) == 1
    assert len(linear.issues) == 1 and len(slack.messages["C0123456789"]) == 1


def test_retry_after_a_lost_response_creates_one_issue(jobq_harness: Harness, spec: Any, store: Any,
                                                       github: FakeGitHub) -> None:
    github.lose_response_next(operation="issues/create")
    data = {"bugReportId": "b1", "projectId": "p1", "platform": "github", "credentials": {"token": github.token},
            "config": {"owner": "octo", "repo": "app", "apiUrl": github.url}, "report": {"title": "t"}}
    job = jobq_harness.run(spec, data, job_id="lost-1", backoff=0.05)
    assert job.state == "completed" and job.result["status"] == "created"
    assert job.attempts == 2 and job.failed_attempts == 1
    assert len(github.issues["octo/app"]) == 1 and len(github.calls("issues/create")) == 1


def test_rate_limit_defers_without_spending_an_attempt(jobq_harness: Harness, spec: Any, store: Any,
                                                      slack: FakeSlack) -> None:
    slack.rate_limit_next(retry_after=0, operation="chat.postMessage", times=2)
    data = {"bugReportId": "b1", "projectId": "p1", "platform": "slack",
            "credentials": {"botToken": slack.bot_token}, "config": {"channel": "C0123456789",
                                                                   "apiUrl": slack.api_url},
            "report": {"title": "t"}}
    job = jobq_harness.run(spec, data, job_id="limited-1", retries=0)
    assert job.state == "completed", job.failure
    assert job.failed_attempts == 0, "a rate limit is not a failure"
    assert len(slack.calls("chat.postMessage")) == 3


def test_auth_failure_fails_at_once(jobq_harness: Harness, spec: Any, store: Any, jira: FakeJira) -> None:
    data = {"bugReportId": "b1", "projectId": "p1", "platform": "jira",
            "credentials": {"email": "dev@example.com", "apiToken": "wrong-token-0000"},
            "config": {"siteUrl": jira.url, "projectKey": "BUG"}, "report": {"title": "t"}}
    job = jobq_harness.run(spec, data, job_id="auth-1")
    assert job.state == "failed" and job.failure.code == "ERR_AUTH"
    assert job.attempts == 1


def test_unknown_platform_fails_naming_installed_ones(jobq_harness: Harness, spec: Any, store: Any) -> None:
    data = {"bugReportId": "b1", "projectId": "p1", "platform": "gitlab", "credentials": {"token": "x"},
            "config": {"projectId": 5}, "report": {"title": "t"}}
    job = jobq_harness.run(spec, data, job_id="unknown-1")
    assert job.state == "failed" and job.failure.code == "ERR_UNKNOWN_PLATFORM" and job.attempts == 1
    assert "installed: github, jira, linear, slack" in job.failure.message


def test_concurrent_syncs_of_one_report_make_one_issue(jobq_harness: Harness, spec: Any, store: Any,
                                                       github: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> None:
    from jobq_plugin_integration import lock

    monkeypatch.setattr(lock, "WAIT_SECONDS", 0.1)
    github.delay_response_next(0.6, operation="issues/create")  # the first job holds the lock a while
    data = {"bugReportId": "b1", "projectId": "p1", "platform": "github", "credentials": {"token": github.token},
            "config": {"owner": "octo", "repo": "app", "apiUrl": github.url}, "report": {"title": "t"}}
    h = jobq_harness
    h.start(spec)
    h.manager.add_job("integrations", "sync-a", data)
    h.wait("integrations", "sync-a", states=("active",))
    h.manager.add_job("integrations", "sync-b", data)
    a, b = h.wait("integrations", "sync-a"), h.wait("integrations", "sync-b")
    assert (a.state, b.state) == ("completed", "completed"), (a.failure, b.failure)
    assert {a.result["status"], b.result["status"]} == {"created", "updated"}
    assert a.result["externalId"] == b.result["externalId"] == "1"
    assert len(github.issues["octo/app"]) == 1
    assert b.failed_attempts == 0, "waiting for the lock is not a failure"
