"""Slack end to end against a fake Slack Web API (HTTP 200 + ok:false errors, 429 + Retry-After)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from jobq import Retry
from jobq_plugin_integration.errors import AuthFailed, NetworkError, TargetNotFound
from jobq_plugin_integration.pipeline import marker_for
from jobq_plugin_integration.testing import FakeSlack

TOKEN = "xoxb-test-token"
CHANNEL = "C0123456789"


def job(slack: FakeSlack, channel: str = CHANNEL, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "bugReportId": "b1", "projectId": "p1", "platform": "slack", "credentials": {"botToken": TOKEN},
        "config": {"channel": channel, "apiUrl": slack.api_url},
        "report": {"title": "Login loops forever", "description": "Hey <!channel> & <@U999>, look at this",
                   "severity": "low", "url": "https://app.example/login?next=a|b",
                   "screenshotUrl": "https://cdn.example/shot.png"},
    }
    data.update(over)
    return data


def test_post_then_update_same_message(slack: FakeSlack, sync: Any, store: Any) -> None:
    first = sync(job(slack, channel="#bugs"))
    (message,) = slack.messages[CHANNEL]
    ts = message["ts"]
    assert first == {"platform": "slack", "externalId": ts, "status": "created",
                     "externalUrl": f"https://jobq-test.slack.example/archives/{CHANNEL}/p{ts.replace('.', '')}"}
    assert message["blocks"][0] == {"type": "header", "block_id": marker_for("p1", "b1"),
                                    "text": {"type": "plain_text", "text": "Login loops forever"}}
    section = message["blocks"][1]["text"]["text"]
    assert "&lt;!channel&gt;" in section and "&lt;@U999&gt;" in section and "&amp;" in section
    context = str(message["blocks"][2])
    assert "<https://app.example/login?next=a%7Cb|https://app.example/login?next=a|b>" in context
    assert "<https://cdn.example/shot.png|open>" in context
    assert store.get_report("b1")["metadata"]["integrations"]["slack"]["ref"] == {"channel": CHANNEL, "ts": ts}
    post = slack.calls("chat.postMessage")[0]
    assert "warning" not in post.response.json, "the JSON body must declare its charset"

    second = sync(job(slack, channel="#bugs", report={"title": "Login loops forever (fixed?)"}), job_id="job-2")
    assert second == {**first, "status": "updated"}
    assert len(slack.messages[CHANNEL]) == 1
    assert slack.messages[CHANNEL][0]["blocks"][0]["text"]["text"] == "Login loops forever (fixed?)"
    update = slack.calls("chat.update")[0].request.json
    assert update["channel"] == CHANNEL and update["ts"] == ts, "chat.update needs the channel id, not #bugs"


def test_invalid_token_is_err_auth(slack: FakeSlack, sync: Any) -> None:
    with pytest.raises(AuthFailed, match="invalid_auth"):
        sync(job(slack, credentials={"botToken": "xoxb-wrong"}))


@pytest.mark.parametrize(("channel", "member", "reason"), [
    ("#nowhere", True, "channel_not_found"),
    (CHANNEL, False, "not_in_channel.*invite the bot"),
])
def test_channel_problems_are_not_found(slack: FakeSlack, sync: Any, channel: str, member: bool,
                                        reason: str) -> None:
    if not member:
        slack.member_of.clear()
    with pytest.raises(TargetNotFound, match=reason):
        sync(job(slack, channel=channel))


def test_rate_limit_reschedules(slack: FakeSlack, sync: Any) -> None:
    slack.rate_limit_next(retry_after=12, operation="chat.postMessage")
    with pytest.raises(Retry) as info:
        sync(job(slack))
    assert info.value.delay == 12


def test_lost_response_found_in_history(slack: FakeSlack, sync: Any) -> None:
    since = time.time() - 1
    slack.lose_response_next(operation="chat.postMessage")
    with pytest.raises(NetworkError):
        sync(job(slack), since=since)
    result = sync(job(slack), attempt=2, since=since)
    assert result["status"] == "created"
    assert len(slack.messages[CHANNEL]) == 1
    assert result["externalId"] == slack.messages[CHANNEL][0]["ts"]


def test_without_history_scope_a_lost_response_can_duplicate(sync: Any, spec_checker: Any) -> None:
    """Slack has no idempotency key: without channels:history the retry cannot see the first post."""
    with FakeSlack(history_scope=False) as slack:
        slack.lose_response_next(operation="chat.postMessage")
        with pytest.raises(NetworkError):
            sync(job(slack))
        assert sync(job(slack), attempt=2)["status"] == "created"
        assert len(slack.messages[CHANNEL]) == 2
        assert slack.calls("conversations.history")[0].response.json["error"] == "missing_scope"
    assert not spec_checker.check("slack", slack)


def test_deleted_message_fails_update_clearly(slack: FakeSlack, sync: Any) -> None:
    sync(job(slack))
    slack.messages[CHANNEL].clear()
    with pytest.raises(TargetNotFound, match="message_not_found"):
        sync(job(slack), job_id="job-2")


def test_permalink_trouble_does_not_fail_a_posted_message(slack: FakeSlack, sync: Any) -> None:
    slack.rate_limit_next(retry_after=30, operation="chat.getPermalink")
    result = sync(job(slack))
    ts = slack.messages[CHANNEL][0]["ts"]
    assert result["status"] == "created" and result["externalId"] == ts
    assert result["externalUrl"] == f"https://slack.com/archives/{CHANNEL}/p{ts.replace('.', '')}"
    assert len(slack.calls("chat.postMessage")) == 1
