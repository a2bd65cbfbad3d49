"""The pipeline around the platforms: routing, validation, report content, outbound policy, reuse."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from typing import Any

import pytest
from jobq import ConfigError, InvalidPayload
from jobq.outbound import DestinationNotAllowed
from jobq.serialization import structure_payload
from jobq_plugin_integration.errors import InvalidField, ReportNotFound, UnknownPlatform
from jobq_plugin_integration.fields import structure
from jobq_plugin_integration.http import shared_client
from jobq_plugin_integration.payload import IntegrationJob
from jobq_plugin_integration.pipeline import IntegrationSettings, run_sync
from jobq_plugin_integration.platforms.jira import JiraConfig, JiraCredentials
from jobq_plugin_integration.registry import default_registry
from jobq_plugin_integration.testing import FakeJira, FakeVendorServer, Response

SECRET = "tok-SECRET-4242"


def jira_job(url: str, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"bugReportId": "b1", "projectId": "p1", "platform": "jira",
                            "credentials": {"email": "dev@example.com", "apiToken": "jira-api-token"},
                            "config": {"siteUrl": url, "projectKey": "BUG"},
                            "report": {"title": "Broken"}}
    data.update(over)
    return data


def test_settings_defaults_and_env() -> None:
    assert IntegrationSettings.from_env({}) == IntegrationSettings(timeout=15.0, allow_http=False)
    custom = IntegrationSettings.from_env({"JOBQ_INTEGRATION_HTTP_TIMEOUT": "2.5", "JOBQ_INTEGRATION_ALLOW_HTTP": "1"})
    assert custom == IntegrationSettings(timeout=2.5, allow_http=True)
    with pytest.raises(ConfigError, match="JOBQ_INTEGRATION_HTTP_TIMEOUT"):
        IntegrationSettings.from_env({"JOBQ_INTEGRATION_HTTP_TIMEOUT": "soon"})


def test_unknown_platform_names_the_installed_ones(sync: Any) -> None:
    with pytest.raises(UnknownPlatform) as info:
        sync({"bugReportId": "b1", "projectId": "p1", "platform": "gitlab", "credentials": {"token": "x"},
              "config": {}, "report": {"title": "t"}})
    assert info.value.code == "ERR_UNKNOWN_PLATFORM" and not info.value.retryable
    assert "'gitlab'" in str(info.value) and "installed: github, jira, linear, slack" in str(info.value)


def test_disabled_platform_is_unknown(sync: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBQ_INTEGRATIONS_DISABLED", "slack, linear")
    with pytest.raises(UnknownPlatform, match=r"disabled by JOBQ_INTEGRATIONS_DISABLED\); installed: github, jira"):
        sync({"bugReportId": "b1", "projectId": "p1", "platform": "slack", "credentials": {"botToken": "xoxb-1"},
              "config": {"channel": "C0123456789"}, "report": {"title": "t"}})


@pytest.mark.parametrize(("change", "field"), [
    ({"config": {"siteUrl": "ftp://jira.example", "projectKey": "BUG"}}, "config.siteUrl"),
    ({"config": {"siteUrl": "https://me:pw@jira.example", "projectKey": "BUG"}}, "config.siteUrl"),
    ({"config": {"siteUrl": "https://jira.example", "projectKey": "bug"}}, "config.projectKey"),
    ({"config": {"siteUrl": "https://jira.example"}}, "config.projectKey: required"),
    ({"config": {"siteUrl": "https://jira.example", "projectKey": "BUG", "priority": 1}}, "config.priority"),
    ({"config": {"siteUrl": "https://jira.example", "projectKey": "BUG", "issueType": 3}}, "config.issueType"),
    ({"credentials": {"email": "dev@example.com"}}, "credentials.apiToken: required"),
    ({"credentials": {"email": "not-an-email", "apiToken": SECRET}}, "credentials.email"),
    ({"report": {"title": "t", "url": "javascript:alert(1)"}}, "report.url"),
    ({"report": {"title": "t", "severity": "urgent"}}, "severity"),
    ({"bugReportId": "../etc"}, "bugReportId"),
    ({"bugReportId": "ok\n"}, "bugReportId"),
    ({"platform": "jira\n"}, "platform"),
])
def test_bad_fields_are_refused_at_enqueue_naming_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidPayload) as info:
        structure_payload(jira_job("https://jira.example", **change), IntegrationJob)
    assert field in str(info.value)
    assert SECRET not in str(info.value)


def test_platform_fields_are_strict_and_never_quote_secrets() -> None:
    with pytest.raises(InvalidField) as info:
        structure(JiraCredentials, {"email": SECRET, "apiToken": SECRET}, "credentials")
    assert info.value.code == "ERR_INVALID_PAYLOAD" and info.value.field == "credentials.email"
    assert SECRET not in str(info.value)
    config = structure(JiraConfig, {"siteUrl": "https://x.atlassian.net", "projectKey": "BUG"}, "config")
    assert config.issue_type == "Bug"
    creds = structure(JiraCredentials, {"email": "a@b.c", "apiToken": SECRET}, "credentials")
    assert SECRET not in repr(creds)
    job = structure_payload(jira_job("https://jira.example", credentials={"email": "a@b.c", "apiToken": SECRET}),
                            IntegrationJob)
    assert SECRET not in repr(job)


def test_report_content_falls_back_to_the_store(jira: FakeJira, sync: Any, store: Any) -> None:
    store.create_report(project_id="p1", report_id="b2", title="From the store", description="stored text",
                        severity="critical", url="https://shop.example/p")
    # the keys the screenshot and replay plugins record
    store.record("b2", "p1", "screenshot", {"originalUrl": "https://cdn.example/b2.png",
                                            "thumbnailUrl": "https://cdn.example/b2-thumb.png"})
    store.record("b2", "p1", "replay", {"replayUrl": "https://cdn.example/b2/", "metadataUrl": "https://x/m.json"})
    sync(jira_job(jira.url, bugReportId="b2", report={"description": "payload wins"}))
    (issue,) = jira.issues.values()
    text = str(issue["fields"]["description"])
    assert issue["fields"]["summary"] == "From the store"
    assert "payload wins" in text and "stored text" not in text
    assert "critical" in text and "https://cdn.example/b2.png" in text
    assert "https://cdn.example/b2/" in text and "b2-thumb" not in text


def test_no_content_anywhere_is_report_not_found(jira: FakeJira, sync: Any) -> None:
    with pytest.raises(ReportNotFound, match="not in the bug-report store") as info:
        sync({k: v for k, v in jira_job(jira.url).items() if k != "report"})
    assert info.value.code == "ERR_REPORT_NOT_FOUND" and not jira.exchanges


def test_report_of_another_project_is_refused(jira: FakeJira, sync: Any, store: Any) -> None:
    store.create_report(project_id="other", report_id="b1", title="t")
    with pytest.raises(Exception, match="belongs to another project") as info:
        sync(jira_job(jira.url))
    assert getattr(info.value, "code", "") == "ERR_PROJECT_MISMATCH" and not jira.exchanges


def test_plain_http_needs_an_explicit_opt_in(jira: FakeJira, sync: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOBQ_INTEGRATION_ALLOW_HTTP")
    with pytest.raises(InvalidField, match="plain http"):
        sync(jira_job(jira.url))
    assert not jira.exchanges


@pytest.mark.parametrize("host", ["127.0.0.1", "0x7f.1", "[::1]", "169.254.169.254", "10.0.0.1", "100.64.0.1"])
def test_private_destinations_are_refused_without_connecting(sync: Any, monkeypatch: pytest.MonkeyPatch,
                                                             host: str) -> None:
    monkeypatch.delenv("JOBQ_OUTBOUND_ALLOWLIST")
    with FakeJira() as canary:
        port = canary.url.rsplit(":", 1)[1]
        with pytest.raises(DestinationNotAllowed) as info:
            sync(jira_job(f"http://{host}:{port}"))
        assert info.value.code == "ERR_DESTINATION_NOT_ALLOWED" and not info.value.retryable
        assert canary.connections == 0


def test_redirect_to_a_refused_address_is_not_followed(sync: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeJira() as canary, FakeVendorServer(host="127.0.0.2") as redirector:
        redirector.route("POST", "/rest/api/3/issue", "createIssue",
                         lambda _r, _m: Response(307, headers={"Location": f"{canary.url}/rest/api/3/issue"}))
        redirector.route("GET", "/rest/api/3/search/jql", "searchIssues",
                         lambda _r, _m: Response(200, json={"issues": []}))
        monkeypatch.setenv("JOBQ_OUTBOUND_ALLOWLIST", "127.0.0.2")
        with pytest.raises(DestinationNotAllowed, match=r"127\.0\.0\.1"):
            sync(jira_job(redirector.url))
        assert canary.connections == 0
        assert [e.operation for e in redirector.exchanges] == ["searchIssues", "createIssue"]


def test_one_client_reuses_connections_across_jobs(jira: FakeJira, store: Any) -> None:
    settings = IntegrationSettings.from_env()

    async def main() -> list[Any]:
        client = shared_client(settings.timeout)
        assert shared_client(settings.timeout) is client
        out = []
        for n in range(3):
            payload = structure_payload(jira_job(jira.url, bugReportId=f"r{n}"), IntegrationJob)
            out.append(await run_sync(payload, job_id=f"j{n}", attempt=1, since=time.time(), store=store,
                                      client=client, registry=default_registry(), settings=settings))
        await client.aclose()
        return out

    results = asyncio.run(main())
    assert [r["externalId"] for r in results] == ["BUG-1", "BUG-2", "BUG-3"]
    assert len(jira.exchanges) == 6
    assert {e.request.connection for e in jira.exchanges} == {1}, "all six requests over one connection"


def test_progress_reports_the_four_steps(jira: FakeJira, store: Any) -> None:
    steps: list[Any] = []
    settings = IntegrationSettings.from_env()
    payload = structure_payload(jira_job(jira.url), IntegrationJob)

    async def main() -> Any:
        client = shared_client(settings.timeout)
        try:
            return await run_sync(payload, job_id="j", attempt=1, since=time.time(), store=store, client=client,
                                  registry=default_registry(), settings=settings, progress=steps.append)
        finally:
            await client.aclose()

    asyncio.run(main())
    assert steps == ["1/4", "2/4", "3/4", "4/4"]
    assert all(re.fullmatch(r"\d/4", s) for s in steps)


class FlakyStore:
    """The real store, whose first ``record`` fails the way a locked SQLite database does."""

    transient_errors = (sqlite3.OperationalError,)

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.failures = 1

    def get_report(self, report_id: str) -> Any:
        return self.inner.get_report(report_id)

    def record(self, *args: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("database is locked")
        self.inner.record(*args)


def test_store_failure_after_creation_is_retried_without_a_duplicate(store: Any) -> None:
    from jobq import JobFailed
    from jobq_plugin_integration.testing import FakeGitHub

    flaky = FlakyStore(store)
    settings = IntegrationSettings.from_env()
    with FakeGitHub() as github:
        data = {"bugReportId": "b1", "projectId": "p1", "platform": "github", "credentials": {"token": github.token},
                "config": {"owner": "octo", "repo": "app", "apiUrl": github.url}, "report": {"title": "t"}}
        payload = structure_payload(data, IntegrationJob)

        async def attempt(n: int) -> Any:
            client = shared_client(settings.timeout)
            try:
                return await run_sync(payload, job_id="j", attempt=n, since=time.time() - 5, store=flaky,
                                      client=client, registry=default_registry(), settings=settings)
            finally:
                await client.aclose()

        with pytest.raises(JobFailed) as info:
            asyncio.run(attempt(1))
        assert info.value.code == "ERR_REPORT_STORE" and info.value.retryable
        assert asyncio.run(attempt(2))["externalId"] == "1"
        assert len(github.issues["octo/app"]) == 1
    assert store.get_report("b1")["metadata"]["integrations"]["github"]["externalId"] == "1"


def test_a_held_report_lock_defers_the_second_sync(jira: FakeJira, sync: Any) -> None:
    from jobq import Retry, Settings
    from jobq_plugin_integration.lock import report_lock
    from jobq_plugin_integration.pipeline import marker_for

    async def hold() -> None:
        async with report_lock(Settings.from_env(), "jira", marker_for("p1", "b1"), owner="job-first"):
            with pytest.raises(Retry, match="another job is syncing this report") as info:
                await asyncio.to_thread(sync, jira_job(jira.url), job_id="job-second")
            assert info.value.delay > 0
            assert not jira.exchanges
            # the same job retried (its worker died holding the lock) takes its lock back at once
            result = await asyncio.to_thread(sync, jira_job(jira.url), job_id="job-first", attempt=2)
            assert result["status"] == "created"

    asyncio.run(hold())
    assert sync(jira_job(jira.url), job_id="job-second")["status"] == "updated", "released after the block"


def test_credential_references_resolve_from_the_worker_environment(monkeypatch):
    from jobq_plugin_integration.references import resolve_references

    monkeypatch.setenv("JOBQ_CREDENTIAL_GH_TOKEN", "ghp_from_env")
    assert resolve_references({"token": "env:JOBQ_CREDENTIAL_GH_TOKEN", "email": "a@b.c"}) == {
        "token": "ghp_from_env", "email": "a@b.c"}
    monkeypatch.delenv("JOBQ_CREDENTIAL_GH_TOKEN")
    with pytest.raises(InvalidField, match=r"credentials\.token: .*not set on the worker"):
        resolve_references({"token": "env:JOBQ_CREDENTIAL_GH_TOKEN"})


@pytest.mark.parametrize("name", ["AWS_SECRET_ACCESS_KEY", "DATABASE_URL", "JOBQ_CREDENTIAL_", "jobq_credential_x",
                                  "JOBQ_CREDENTIAL_X\n", "", "A=B"])
def test_references_only_read_the_names_the_operator_allows(monkeypatch, name):
    from jobq_plugin_integration.references import resolve_references

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-value")
    with pytest.raises(InvalidField) as info:
        resolve_references({"token": f"env:{name}"})
    assert info.value.field == "credentials.token" and "JOBQ_CREDENTIAL_ENV_ALLOW" in str(info.value)
    assert "aws-secret-value" not in str(info.value)


def test_the_allow_list_admits_exact_names(monkeypatch):
    from jobq_plugin_integration.references import resolve_references

    monkeypatch.setenv("GITHUB_TOKEN", "ghp_legacy")
    monkeypatch.setenv("GITHUB_TOKEN_2", "ghp_other")
    monkeypatch.setenv("JOBQ_CREDENTIAL_ENV_ALLOW", " GITHUB_TOKEN ,LINEAR_KEY")
    assert resolve_references({"token": "env:GITHUB_TOKEN"}) == {"token": "ghp_legacy"}
    with pytest.raises(InvalidField, match=r"credentials\.token"):
        resolve_references({"token": "env:GITHUB_TOKEN_2"})
    monkeypatch.setenv("JOBQ_CREDENTIAL_ENV_ALLOW", "GITHUB_TOKEN,not a name")
    with pytest.raises(ConfigError, match="JOBQ_CREDENTIAL_ENV_ALLOW: 'not a name'"):
        resolve_references({"token": "env:GITHUB_TOKEN"})


def test_a_producer_cannot_send_a_worker_secret_to_its_own_host(sync, jira, monkeypatch):
    """The attack from issue 14: any variable, sent as the API token to a URL the producer chose."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-value")
    with pytest.raises(InvalidField) as info:
        sync(jira_job(jira.url, credentials={"email": "dev@example.com", "apiToken": "env:AWS_SECRET_ACCESS_KEY"}))
    assert info.value.code == "ERR_INVALID_PAYLOAD" and info.value.field == "credentials.apiToken"
    assert jira.exchanges == [], "no request may leave the worker"
    monkeypatch.setenv("JOBQ_CREDENTIAL_JIRA", "jira-api-token")
    result = sync(jira_job(jira.url, credentials={"email": "dev@example.com", "apiToken": "env:JOBQ_CREDENTIAL_JIRA"}))
    assert result["status"] == "created"
