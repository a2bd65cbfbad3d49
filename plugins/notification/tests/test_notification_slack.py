"""Slack incoming webhooks against a real receiver, validated with the incoming-webhook schema."""

from __future__ import annotations

import json

import jsonschema
import pytest
from jobq import Retry, UnrecoverableError
from jobq.testing import Canary
from notification_support import SPECS, Receiver, payload, run_job

SCHEMA = json.loads((SPECS / "slack" / "incoming-webhook.derived.json").read_text())
HOOK = "/services/T0001/B0002/XXXXXXXXXXXXXXXXXXXXXXXX"


def test_block_kit_message_reaches_the_webhook(notify_env: dict, receiver: Receiver) -> None:
    result = run_job(payload("slack", [receiver.url(HOOK)]))
    assert result == {
        "type": "slack",
        "recipientCount": 1,
        "successCount": 1,
        "failureCount": 0,
        "errors": [],
    }
    (hit,) = receiver.hits(HOOK)
    message = hit.json()
    jsonschema.Draft202012Validator(SCHEMA).validate(message)
    assert hit.headers["content-type"].startswith("application/json")
    assert [b["type"] for b in message["blocks"]] == [
        "header",
        "section",
        "section",
        "section",
        "context",
        "actions",
    ]
    raw = hit.body.decode()
    assert "<b>" not in raw and "<script>" not in raw and "&lt;b&gt;broken&lt;/b&gt; &amp;" in raw
    assert message["blocks"][-1]["elements"][0]["url"] == "https://app.example.com/reports/b1"


def test_only_slack_hosts_unless_allow_listed(notify_env: dict, canary: Canary) -> None:
    urls = [
        f"http://127.0.0.1:{canary.port}{HOOK}",
        f"https://evil.example.com{HOOK}",
        f"http://hooks.slack.com{HOOK}",
    ]
    with pytest.raises(UnrecoverableError) as err:
        run_job(payload("slack", urls))
    assert err.value.code == "ERR_DESTINATION_NOT_ALLOWED"
    text = str(err.value)
    assert "not a Slack incoming-webhook host" in text and "must use https" in text
    assert "XXXXXXXX" not in text and "T0001" not in text
    assert canary.accepted == 0


def test_revoked_webhook_fails_for_good_and_hides_the_url(notify_env: dict, receiver: Receiver) -> None:
    receiver.respond(HOOK, (404, {}, b"no_service"))
    receiver.respond("/services/T1/B1/ok", (200, {}, b"ok"))
    result = run_job(payload("slack", [receiver.url(HOOK), receiver.url("/services/T1/B1/ok")]))
    assert result["successCount"] == 1 and result["failureCount"] == 1
    (error,) = result["errors"]
    assert error["code"] == "ERR_DELIVERY_REJECTED" and "(no_service)" in error["message"]
    assert error["recipient"] == f"#0 http://{receiver.host}:{receiver.port}/…"
    assert "T0001" not in json.dumps(result)


def test_rate_limited_by_slack(notify_env: dict, receiver: Receiver) -> None:
    receiver.respond(HOOK, (429, {"Retry-After": "12"}, b"rate_limited"))
    with pytest.raises(Retry) as err:
        run_job(payload("slack", [receiver.url(HOOK)]))
    assert err.value.delay == 12 and "T0001" not in str(err.value)
    assert run_job(payload("slack", [receiver.url(HOOK)]))["successCount"] == 1


def test_mentions_in_reports_cannot_ping_the_channel(notify_env: dict, receiver: Receiver) -> None:
    data = payload("slack", [receiver.url(HOOK)])
    data["report"] = {**data["report"], "title": "<!channel> look <https://evil.example|click>"}
    run_job(data)
    raw = receiver.hits(HOOK)[0].body.decode()
    assert "<!channel>" not in raw and "&lt;!channel&gt;" in raw and "<https://evil" not in raw
