"""Vendor rate limits: the limit key every job of one credential shares, 429s raising RateLimited
with it (Retry-After or X-RateLimit-Reset), and Slack's per-channel pacing across workers (real Redis)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import attrs
import pytest
from jobq import QueueManager, RateLimited, Settings
from jobq_plugin_integration import jobq_queues
from jobq_plugin_integration.limits import job_limit_key, limit_key, pace
from jobq_plugin_integration.testing import FakeJira, FakeSlack

pytestmark = pytest.mark.timeout(60)

TOKEN = "jira-api-token"


def test_each_credential_gets_one_limit_key_at_enqueue(jobq_settings) -> None:
    (spec,) = jobq_queues()
    spec = attrs.evolve(spec, payload=None)  # the key is derived from the raw payload either way
    data = {"platform": "github", "credentials": {"token": "ghp_SECRET"}, "config": {}}
    with QueueManager(jobq_settings, [spec]) as m:
        a = m.add_job("integrations", "a", data)
        b = m.add_job("integrations", "b", {**data, "credentials": {"token": "ghp_OTHER"}})
        key_a, key_b = (m.redis.hget(m.keys("integrations").job(j.id), "lkey").decode() for j in (a, b))
    assert key_a == job_limit_key(data) == limit_key("github", {"token": "ghp_SECRET"})
    assert key_a.startswith("integrations:github:") and key_a != key_b
    assert "SECRET" not in key_a


def _jira_job(jira: FakeJira) -> dict[str, Any]:
    return {"bugReportId": "b1", "projectId": "p1", "platform": "jira",
            "credentials": {"email": "dev@example.com", "apiToken": TOKEN},
            "config": {"siteUrl": jira.url, "projectKey": "BUG"}, "report": {"title": "Crash"}}


def test_a_429_holds_every_job_of_the_credential(jira: FakeJira, sync: Any) -> None:
    reset = int(time.time()) + 9
    jira.fail_next(429, json={"errorMessages": ["Rate limit exceeded."], "errors": {}},
                   headers={"X-RateLimit-Reset": str(reset)}, operation="createIssue")
    with pytest.raises(RateLimited) as info:
        sync(_jira_job(jira))
    assert info.value.key == limit_key("jira", {"email": "dev@example.com", "apiToken": TOKEN})
    assert 7 <= info.value.delay <= 9.5
    assert TOKEN not in str(info.value)


def test_pace_spaces_sends_across_callers_and_defers_beyond_its_wait(jobq_settings) -> None:
    async def main() -> list[Any]:
        async def one() -> Any:
            try:
                await pace(jobq_settings, "slack:C1", 0.1, max_wait=0.25)
            except RateLimited as exc:
                return exc
            return time.monotonic()

        return await asyncio.gather(*(one() for _ in range(4)))

    results = asyncio.run(main())
    sent = sorted(r for r in results if isinstance(r, float))
    deferred = [r for r in results if isinstance(r, RateLimited)]
    assert len(sent) == 3 and len(deferred) == 1
    assert sent[1] - sent[0] >= 0.09 and sent[2] - sent[1] >= 0.09
    assert 0 < deferred[0].delay <= 0.06


def test_slack_posts_to_one_channel_are_paced(slack: FakeSlack, store: Any, monkeypatch) -> None:
    from jobq.serialization import structure_payload
    from jobq_plugin_integration.http import shared_client
    from jobq_plugin_integration.payload import IntegrationJob
    from jobq_plugin_integration.pipeline import IntegrationSettings, run_sync
    from jobq_plugin_integration.registry import default_registry

    settings = IntegrationSettings.from_env()
    jq = Settings.from_env()

    def payload(report: str) -> Any:
        return structure_payload({
            "bugReportId": report, "projectId": "p1", "platform": "slack",
            "credentials": {"botToken": "xoxb-test-token"},
            "config": {"channel": "C0123456789", "apiUrl": slack.api_url, "messagesPerSecond": 4},
            "report": {"title": f"Report {report}"}}, IntegrationJob)

    async def main() -> list[float]:
        client = shared_client(settings.timeout)

        async def one(report: str) -> float:
            await run_sync(payload(report), job_id=report, attempt=1, since=time.time() - 5, store=store,
                           client=client, registry=default_registry(), settings=settings,
                           pace=lambda target, interval: pace(jq, target, interval))
            return time.monotonic()

        try:
            return sorted(await asyncio.gather(*(one(r) for r in ("r1", "r2", "r3"))))
        finally:
            await client.aclose()

    done = asyncio.run(main())
    assert len(slack.messages["C0123456789"]) == 3
    assert done[2] - done[0] >= 0.45  # 4 per second: the third post waits ~0.5 s for its slot
