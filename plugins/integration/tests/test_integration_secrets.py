"""Canary credentials must never surface: not in errors, logs, results, job records, Redis, the store.

Every fake here echoes the credentials it was sent in its 401/invalid_auth answer, the worst case.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import jobq_plugin_integration
import pytest
import redis
from click.testing import CliRunner
from jobq.queue import QueueManager
from jobq.testing import Harness, wait_until
from jobq_plugin_integration.testing import FakeGitHub, FakeJira, FakeLinear, FakeSlack

CANARY = "CANARY-7f3a9c1e5d"


def canary_job(platform: str, server: Any) -> dict[str, Any]:
    base = {"bugReportId": f"b-{platform}", "projectId": "p1", "platform": platform, "report": {"title": "t"}}
    return {
        "jira": {**base, "credentials": {"email": "dev@example.com", "apiToken": CANARY},
                 "config": {"siteUrl": getattr(server, "url", ""), "projectKey": "BUG"}},
        "github": {**base, "credentials": {"token": CANARY},
                   "config": {"owner": "octo", "repo": "app", "apiUrl": getattr(server, "url", "")}},
        "linear": {**base, "credentials": {"apiKey": CANARY},
                   "config": {"teamId": "team-eng", "apiUrl": getattr(server, "api_url", "")}},
        "slack": {**base, "credentials": {"botToken": f"xoxb-{CANARY}"},
                  "config": {"channel": "C0123456789", "apiUrl": getattr(server, "api_url", "")}},
    }[platform]


FAKES = {"jira": FakeJira, "github": FakeGitHub, "linear": FakeLinear, "slack": FakeSlack}


def redis_dump(settings: Any) -> bytes:
    """Every value of every key under the test's prefix, concatenated."""
    client = redis.Redis.from_url(settings.redis_url)
    out = []
    try:
        for key in client.scan_iter(match=f"{settings.prefix}:*", count=1000):
            kind = client.type(key).decode()
            value: Any = {"string": lambda k: client.get(k), "hash": client.hgetall, "list": lambda k:
                          client.lrange(k, 0, -1), "set": client.smembers, "zset": lambda k: client.zrange(k, 0, -1),
                          "stream": lambda k: client.xrange(k)}[kind](key)
            out.append(key + b"=" + repr(value).encode())
    finally:
        client.close()
    return b"\n".join(out)


@pytest.mark.parametrize("platform", sorted(FAKES))
def test_echoed_credentials_do_not_reach_errors_or_logs(platform: str, sync: Any, caplog: pytest.LogCaptureFixture,
                                                        spec_checker: Any) -> None:
    caplog.set_level(logging.DEBUG)
    with FAKES[platform](echo_credentials=True) as server:
        with pytest.raises(Exception) as info:
            sync(canary_job(platform, server))
        answered = b"".join(json.dumps(e.response.json).encode() for e in server.exchanges if e.response)
    assert CANARY.encode() in answered, "the fake must really echo the token for this test to mean anything"
    assert getattr(info.value, "code", "") == "ERR_AUTH"
    if platform in ("jira", "github"):  # their messages quote the vendor's words: the echo, scrubbed
        assert "[redacted]" in str(info.value)
    rendered = "".join(traceback.format_exception(info.value))
    assert CANARY not in rendered
    assert CANARY not in caplog.text


def test_worker_records_and_redis_hold_no_credentials(jobq_harness: Harness, store: Any, loopback_env: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    (spec,) = jobq_plugin_integration.jobq_queues()
    h = jobq_harness
    h.start(spec)
    with FakeGitHub(echo_credentials=True) as refusing, FakeGitHub(token=CANARY) as accepting:
        failed = h.run(spec, canary_job("github", refusing), job_id="canary-fail")
        ok_job = {**canary_job("github", accepting), "bugReportId": "b-ok"}
        done = h.run(spec, ok_job, job_id="canary-ok")
    assert failed.state == "failed" and failed.failure.code == "ERR_AUTH"
    assert done.state == "completed" and done.result["status"] == "created"
    for job in (failed, done):
        assert CANARY not in json.dumps(h.manager.job_dict("integrations", job.id))
    assert h.manager.job_dict("integrations", failed.id)["data"]["credentials"] == "[redacted]"
    assert CANARY.encode() not in redis_dump(h.settings), "credentials must be gone from Redis once jobs end"
    assert CANARY not in caplog.text
    assert CANARY.encode() not in loopback_env.read_bytes()

    from jobq.cli import cli

    monkeypatch.setenv("REDIS_URL", h.settings.redis_url)
    monkeypatch.setenv("JOBQ_PREFIX", h.settings.prefix)
    for job_id in ("canary-fail", "canary-ok"):
        for extra in ([], ["--json"]):
            result = CliRunner().invoke(cli, ["job", "integrations", job_id, *extra])
            assert result.exit_code == 0, result.output
            assert job_id in result.output and CANARY not in result.output


def test_a_token_echoed_in_response_headers_stays_out_of_a_debug_log(jobq_settings: Any, store: Any) -> None:
    """``jobq --log-level DEBUG run``: httpcore logs every response header verbatim. The token comes
    from an ``env:`` reference, so only the pipeline knows its value; a vendor echoes it in headers."""
    (spec,) = jobq_plugin_integration.jobq_queues()
    env = {**os.environ, "REDIS_URL": jobq_settings.redis_url, "JOBQ_PREFIX": jobq_settings.prefix,
           "JOBQ_CREDENTIAL_GITHUB": CANARY, "WORKER_TYPES": "integrations"}
    with FakeGitHub(token="another-token") as github, QueueManager(jobq_settings, [spec]) as qm:
        github.fail_next(401, json={"message": "Bad credentials"},
                         headers={"X-Echo": f"Bearer {CANARY}", "X-Request-Context": CANARY})
        job = {**canary_job("github", github), "credentials": {"token": "env:JOBQ_CREDENTIAL_GITHUB"}}
        qm.add_job("integrations", "echo-1", job)
        worker = subprocess.Popen([str(Path(sys.executable).with_name("jobq")), "--log-level", "DEBUG", "run"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            failed = wait_until(lambda: (j := qm.get_job("integrations", "echo-1")) and j.state == "failed" and j,
                                30, message="the sync to fail")
        finally:
            worker.send_signal(signal.SIGTERM)
            _, log_text = worker.communicate(timeout=30)
    assert failed.failure.code == "ERR_AUTH"
    assert "receive_response_headers.complete" in log_text and "X-Request-Context" in log_text, \
        "httpcore must have logged the response headers for this test to mean anything"
    assert CANARY not in log_text
