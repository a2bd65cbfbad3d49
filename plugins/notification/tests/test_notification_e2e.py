"""End to end through a real worker on real Redis (jobq's harness)."""

from __future__ import annotations

import json
import logging

import pytest
import redis
from jobq.testing import Canary, Harness
from jobq_plugin_notification import jobq_queues
from notification_support import WEBHOOK_SECRET, Receiver, payload

SPEC = jobq_queues()[0]
SLACK_TOKEN = "xoxcanary-slack-token-5d1c"
OWN_SECRET = "whsec_Y2FuYXJ5LXdlYmhvb2stc2VjcmV0LWZvci1lMmUtdGVzdHM="


def dump_redis(h: Harness) -> str:
    """Every value under the test's key prefix, as text."""
    client = redis.Redis.from_url(h.settings.redis_url)
    parts: list[str] = []
    try:
        for key in client.scan_iter(match=f"{h.settings.prefix}*", count=1000):
            kind = client.type(key).decode()
            if kind == "string":
                parts.append(repr(client.get(key)))
            elif kind == "hash":
                parts.append(repr(client.hgetall(key)))
            elif kind == "list":
                parts.append(repr(client.lrange(key, 0, -1)))
            elif kind == "zset":
                parts.append(repr(client.zrange(key, 0, -1)))
            elif kind == "set":
                parts.append(repr(client.smembers(key)))
            elif kind == "stream":
                parts.append(repr(client.xrange(key)))
    finally:
        client.close()
    return "\n".join(parts)


def test_partial_failure_is_retried_for_the_failed_recipients_only(
    jobq_harness: Harness, notify_env: dict, receiver: Receiver
) -> None:
    receiver.respond("/r1", (503, {}, b""))
    receiver.respond("/r3", (500, {}, b""))
    paths = [f"/r{i}" for i in range(5)]
    job = jobq_harness.run(SPEC, payload("webhook", [receiver.url(p) for p in paths]), job_id="n-partial", backoff=0.05)
    assert job.state == "completed" and job.attempts == 2
    assert job.result == {"type": "webhook", "recipientCount": 5, "successCount": 5, "failureCount": 0, "errors": []}
    assert [len(receiver.hits(p)) for p in paths] == [1, 2, 1, 2, 1]
    ids = {h.headers["webhook-id"] for h in receiver.hits("/r1")}
    assert len(ids) == 1


def test_retries_running_out_fail_the_job_with_the_errors(
    jobq_harness: Harness, notify_env: dict, receiver: Receiver
) -> None:
    receiver.respond("/down", *[(502, {}, b"")] * 3)
    job = jobq_harness.run(
        SPEC,
        payload("webhook", [receiver.url("/ok"), receiver.url("/down")]),
        job_id="n-exhaust",
        retries=2,
        backoff=0.05,
    )
    assert job.state == "failed" and job.attempts == 3
    assert job.failure.code == "ERR_DELIVERY_FAILED"
    assert "1 of 2 recipients not delivered" in job.failure.message and "HTTP 502" in job.failure.message
    assert len(receiver.hits("/ok")) == 1 and len(receiver.hits("/down")) == 3


def test_ssrf_targets_fail_at_once_and_are_never_contacted(
    jobq_harness: Harness, notify_env: dict, canary: Canary
) -> None:
    targets = [
        f"http://127.0.0.1:{canary.port}/",
        f"http://2130706433:{canary.port}/",
        "http://[::1]/",
        f"http://017700000001:{canary.port}/",
        "http://169.254.169.254/latest/",
        "http://127.0.0.1:6379/",
    ]
    job = jobq_harness.run(SPEC, payload("webhook", targets), job_id="n-ssrf")
    assert job.state == "failed" and job.attempts == 1
    assert job.failure.code == "ERR_DESTINATION_NOT_ALLOWED"
    assert canary.accepted == 0


def test_rate_limit_defers_without_spending_an_attempt(
    jobq_harness: Harness, notify_env: dict, receiver: Receiver
) -> None:
    receiver.respond("/busy", (429, {"Retry-After": "1"}, b""))
    job = jobq_harness.run(SPEC, payload("webhook", [receiver.url("/busy")]), job_id="n-429")
    assert job.state == "completed" and job.result["successCount"] == 1
    assert job.failed_attempts == 0 and len(receiver.hits("/busy")) == 2


def test_secrets_never_reach_redis_or_logs(
    jobq_harness: Harness, notify_env: dict, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    slack_path = f"/services/T9/B9/{SLACK_TOKEN}"
    receiver.respond(slack_path, *[(500, {}, SLACK_TOKEN.encode())] * 2)
    receiver.respond("/own", (401, {}, OWN_SECRET.encode()))
    with caplog.at_level(logging.DEBUG):
        slack = jobq_harness.run(
            SPEC, payload("slack", [receiver.url(slack_path)]), job_id="n-slack", retries=1, backoff=0.05
        )
        hook = jobq_harness.run(
            SPEC,
            payload("webhook", [{"url": receiver.url("/own"), "secret": OWN_SECRET}, receiver.url("/plain")]),
            job_id="n-hook",
        )
    assert slack.state == "failed" and slack.failure.code == "ERR_DELIVERY_FAILED"
    assert hook.state == "completed" and hook.result["failureCount"] == 1
    assert hook.result["errors"][0]["code"] == "ERR_AUTH"
    stored = dump_redis(jobq_harness)
    assert "n-slack" in stored and "n-hook" in stored  # the dump did see the jobs
    for secret in (SLACK_TOKEN, OWN_SECRET, WEBHOOK_SECRET):
        assert secret not in stored
        assert secret not in caplog.text
        assert secret not in json.dumps(hook.result) and secret not in slack.failure.message
