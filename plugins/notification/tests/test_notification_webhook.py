"""Custom webhooks against a real receiver: Standard Webhooks signatures, partial failure, SSRF."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import standardwebhooks
from jobq import JobFailed, Retry, UnrecoverableError
from jobq.testing import Canary
from jobq_bugreports.store import ReportStore
from jobq_plugin_notification.webhook import sign
from notification_support import WEBHOOK_SECRET, Receiver, payload, run_job

SECOND_SECRET = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24tdGVzdHM="
OWN_SECRET = "whsec_b3duLWVuZHBvaW50LXNlY3JldC0wMTIzNDU2Nzg5YWI="


def verify(secret: str, hit: object) -> dict:
    return standardwebhooks.Webhook(secret).verify(hit.body, hit.headers)  # type: ignore[attr-defined]


def test_deliveries_are_signed_and_verify_with_the_reference_library(notify_env: dict, receiver: Receiver) -> None:
    result = run_job(payload("webhook", [receiver.url("/a"), {"url": receiver.url("/b"), "secret": OWN_SECRET}]))
    assert result == {
        "type": "webhook",
        "recipientCount": 2,
        "successCount": 2,
        "failureCount": 0,
        "errors": [],
    }
    a, b = receiver.hits("/a")[0], receiver.hits("/b")[0]
    body = verify(WEBHOOK_SECRET, a)
    assert verify(OWN_SECRET, b) == body
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        verify(WEBHOOK_SECRET, b)  # per-endpoint secret, not the default one
    assert body["type"] == "bug_report.created"
    assert body["data"]["bugReportId"] == "b1" and body["data"]["report"]["title"].startswith("Checkout button <b>")
    assert a.headers["content-type"] == "application/json"
    assert a.headers["webhook-id"] != b.headers["webhook-id"]
    assert abs(int(a.headers["webhook-timestamp"]) - time.time()) < 60


def test_rotation_signs_with_every_active_secret(notify_env: dict, receiver: Receiver) -> None:
    run_job(payload("webhook", [{"url": receiver.url("/r"), "secret": f"{OWN_SECRET} {SECOND_SECRET}"}]))
    hit = receiver.hits("/r")[0]
    assert len(hit.headers["webhook-signature"].split()) == 2
    assert verify(OWN_SECRET, hit) == verify(SECOND_SECRET, hit)


def test_tampered_or_stale_messages_are_rejected_by_the_verifier(notify_env: dict, receiver: Receiver) -> None:
    run_job(payload("webhook", [receiver.url("/t")]))
    hit = receiver.hits("/t")[0]
    tampered = hit.body.replace(b"Checkout", b"Check-in")
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(WEBHOOK_SECRET).verify(tampered, hit.headers)
    old = int(time.time()) - 3600
    headers = {
        **hit.headers,
        "webhook-timestamp": str(old),
        "webhook-signature": sign(hit.headers["webhook-id"], old, hit.body, [WEBHOOK_SECRET]),
    }
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(WEBHOOK_SECRET).verify(hit.body, headers)


def test_partial_failure_retries_only_the_failed_recipients(notify_env: dict, receiver: Receiver) -> None:
    paths = [f"/r{i}" for i in range(5)]
    receiver.respond("/r1", (503, {}, b"busy"))
    receiver.respond("/r3", (500, {}, b"oops"))
    data = payload("webhook", [receiver.url(p) for p in paths])
    with pytest.raises(JobFailed) as err:
        run_job(data, attempt=1)
    assert err.value.retryable and err.value.code == "ERR_DELIVERY_FAILED"
    assert "2 of 5" in str(err.value) and "HTTP 503" in str(err.value) and "/r1" not in str(err.value)
    assert [len(receiver.hits(p)) for p in paths] == [1, 1, 1, 1, 1]
    result = run_job(data, attempt=2)
    assert result["successCount"] == 5 and result["failureCount"] == 0
    assert [len(receiver.hits(p)) for p in paths] == [1, 2, 1, 2, 1]  # nobody got it twice but the failed
    first, second = receiver.hits("/r1")
    assert first.headers["webhook-id"] == second.headers["webhook-id"]  # receivers dedupe on it
    assert first.body == second.body
    # Once complete, a further run (a duplicate execution) sends nothing at all.
    assert run_job(data, attempt=3)["successCount"] == 5
    assert len(receiver.hits()) == 7


def test_delivery_records_are_kept_per_recipient(notify_env: dict, receiver: Receiver) -> None:
    receiver.respond("/gone", (410, {}, b"gone"))
    run_job(payload("webhook", [receiver.url("/ok"), receiver.url("/gone")]), job_id="job-rec")
    store = ReportStore(notify_env["DATABASE_URL"])
    try:
        records = store.get_report("b1")["metadata"]["notifications"]["job-rec"]
    finally:
        store.close()
    by_status = sorted((r["status"], r.get("code"), r.get("httpStatus")) for r in records.values())
    assert by_status == [("delivered", None, 200), ("failed", "ERR_DELIVERY_REJECTED", 410)]
    assert all(r["attempt"] == 1 and r["type"] == "webhook" and r["event"] == "created" for r in records.values())


def test_4xx_is_final_5xx_is_retried_until_attempts_run_out(notify_env: dict, receiver: Receiver) -> None:
    receiver.respond("/bad", (400, {}, b"nope"))
    receiver.respond("/down", *[(502, {}, b"")] * 4)
    data = payload("webhook", [receiver.url("/bad"), receiver.url("/down")])
    for attempt in range(1, 5):
        with pytest.raises(JobFailed) as err:
            run_job(data, attempt=attempt)
        assert err.value.retryable
    message = str(err.value)
    assert "ERR_DELIVERY_REJECTED HTTP 400" in message and "ERR_DELIVERY_FAILED HTTP 502" in message
    assert len(receiver.hits("/bad")) == 1 and len(receiver.hits("/down")) == 4


def test_all_recipients_refused_fails_without_retry(notify_env: dict, receiver: Receiver) -> None:
    receiver.respond("/x", (404, {}, b""))
    receiver.respond("/y", (401, {}, b"token sk_live_ECHOED"))
    with pytest.raises(UnrecoverableError) as err:
        run_job(payload("webhook", [receiver.url("/x"), receiver.url("/y")]))
    assert err.value.code == "ERR_DELIVERY_FAILED" and not err.value.retryable
    assert "ERR_AUTH" in str(err.value) and "ECHOED" not in str(err.value)


def test_rate_limit_defers_with_retry_after(notify_env: dict, receiver: Receiver) -> None:
    receiver.respond("/busy", (429, {"Retry-After": "7"}, b""))
    data = payload("webhook", [receiver.url("/busy"), receiver.url("/fine")])
    with pytest.raises(Retry) as err:
        run_job(data)
    assert err.value.delay == 7
    assert run_job(data)["successCount"] == 2
    assert len(receiver.hits("/fine")) == 1 and len(receiver.hits("/busy")) == 2


def test_private_destinations_are_refused_and_never_contacted(
    notify_env: dict, canary: Canary, receiver: Receiver
) -> None:
    targets = [
        f"http://127.0.0.1:{canary.port}/hook",
        f"http://2130706433:{canary.port}/",
        f"http://0x7f.1:{canary.port}/",
        f"http://[::ffff:127.0.0.1]:{canary.port}/",
        f"http://localhost:{canary.port}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://100.64.0.1/",
        "http://[fd00::1]/",
        "http://127.0.0.1:6379/",
    ]
    with pytest.raises(UnrecoverableError) as err:
        run_job(payload("webhook", targets))
    assert err.value.code == "ERR_DESTINATION_NOT_ALLOWED"
    assert str(err.value).count("ERR_DESTINATION_NOT_ALLOWED") == len(targets)
    # An allowed host redirecting to a refused one: the redirect is not followed.
    receiver.respond("/redir", (302, {"Location": f"http://127.0.0.1:{canary.port}/stolen"}, b""))
    with pytest.raises(UnrecoverableError, match="redirects are not followed"):
        run_job(payload("webhook", [receiver.url("/redir")]), job_id="job-redir")
    assert canary.accepted == 0


def test_missing_secret_fails_that_recipient(
    notify_env: dict, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WEBHOOK_SECRET")
    result = run_job(payload("webhook", [receiver.url("/plain"), {"url": receiver.url("/own"), "secret": OWN_SECRET}]))
    assert result["successCount"] == 1 and result["failureCount"] == 1
    assert result["errors"][0]["code"] == "ERR_MISSING_SECRET"
    assert receiver.hits("/plain") == [] and len(receiver.hits("/own")) == 1


def test_tokens_in_urls_never_reach_errors_or_records(notify_env: dict, receiver: Receiver) -> None:
    token = "tok-9f8e7d6c5b4a-SECRET"
    receiver.respond(f"/hook/{token}?key={token}", (500, {}, token.encode()))
    with pytest.raises(JobFailed) as err:
        run_job(payload("webhook", [receiver.url(f"/hook/{token}?key={token}")]))
    assert token not in str(err.value)
    store = ReportStore(notify_env["DATABASE_URL"])
    try:
        assert token not in json.dumps(store.get_report("b1"))
    finally:
        store.close()


def test_duplicate_recipients_are_sent_once(notify_env: dict, receiver: Receiver) -> None:
    result = run_job(payload("webhook", [receiver.url("/d"), receiver.url("/d")]))
    assert result["recipientCount"] == 1 and len(receiver.hits("/d")) == 1


def test_report_content_comes_from_the_store_when_omitted(notify_env: dict, receiver: Receiver) -> None:
    store = ReportStore(notify_env["DATABASE_URL"])
    try:
        store.create_report(project_id="p1", title="Stored title", severity="critical", report_id="b1")
        store.create_report(project_id="other", title="Elsewhere", report_id="b2")
    finally:
        store.close()
    data = payload("webhook", [receiver.url("/s")])
    del data["report"]
    run_job(data)
    assert verify(WEBHOOK_SECRET, receiver.hits("/s")[0])["data"]["report"]["title"] == "Stored title"
    with pytest.raises(UnrecoverableError) as err:
        run_job({**data, "bugReportId": "b3"}, job_id="job-missing")
    assert err.value.code == "ERR_REPORT_NOT_FOUND"
    with pytest.raises(UnrecoverableError) as err:
        run_job({**data, "bugReportId": "b2"}, job_id="job-other")
    assert err.value.code == "ERR_PROJECT_MISMATCH"
    assert len(receiver.hits()) == 1


def test_the_documented_verification_snippet_accepts_our_signatures(notify_env: dict, receiver: Receiver) -> None:
    doc = (Path(__file__).parents[3] / "docs" / "plugins" / "notification.md").read_text()
    snippet = doc.split("or by hand:\n\n```python\n", 1)[1].split("```", 1)[0]
    scope: dict = {}
    exec(compile(snippet, "notification.md", "exec"), scope)  # the receivers' copy-paste code, as written
    run_job(payload("webhook", [{"url": receiver.url("/v"), "secret": f"{OWN_SECRET} {SECOND_SECRET}"}]))
    hit = receiver.hits("/v")[0]
    assert scope["verify"](OWN_SECRET, hit.headers, hit.body)
    assert scope["verify"](SECOND_SECRET, hit.headers, hit.body)
    assert not scope["verify"](WEBHOOK_SECRET, hit.headers, hit.body)
    assert not scope["verify"](OWN_SECRET, hit.headers, hit.body + b" ")


def test_malformed_default_secret_is_a_config_error(
    notify_env: dict, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", "not-a-whsec-secret-value")
    with pytest.raises(UnrecoverableError) as err:
        run_job(payload("webhook", [receiver.url("/p")]))
    assert err.value.code == "ERR_CONFIG" and "not-a-whsec" not in str(err.value)
    assert run_job(payload("webhook", [{"url": receiver.url("/o"), "secret": OWN_SECRET}]))["successCount"] == 1
    assert receiver.hits("/p") == []


def test_a_slow_receiver_times_out_and_is_retried(
    notify_env: dict, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFICATION_TIMEOUT", "0.2")
    receiver.delay = 1.0
    started = time.monotonic()
    with pytest.raises(JobFailed) as err:
        run_job(payload("webhook", [receiver.url("/slow")]))
    assert time.monotonic() - started < 0.9
    assert err.value.retryable and "ERR_DELIVERY_TIMEOUT" in str(err.value)


def test_webhooks_to_one_host_are_limited_across_jobs(notify_env: dict, receiver: Receiver, monkeypatch) -> None:
    from jobq import RateLimited
    from jobq.testing import wait_until
    from jobq_plugin_notification.hostlimit import host_of

    monkeypatch.setenv("NOTIFICATION_WEBHOOK_HOST_RATE", "2/0.5")
    data = payload("webhook", [receiver.url(f"/h{i}") for i in range(3)])
    with pytest.raises(RateLimited) as info:
        run_job(data, job_id="hosts-1")
    assert info.value.key == f"notifications:webhook:{host_of(receiver.url('/'))}"
    assert 0 < info.value.delay <= 0.5 and "ERR_RATE_LIMITED" in str(info.value)
    assert sum(len(receiver.hits(f"/h{i}")) for i in range(3)) == 2
    # another job to the same host is refused too until the window rolls, then the pending one goes out
    other = payload("webhook", [receiver.url("/other")])
    with pytest.raises(RateLimited):
        run_job(other, job_id="hosts-2")
    result = wait_until(lambda: _ok(data, "hosts-1"), 5, 0.1, "the window to roll")
    assert result["successCount"] == 3 and sum(len(receiver.hits(f"/h{i}")) for i in range(3)) == 3


def _ok(data: dict, job_id: str) -> dict | None:
    from jobq import RateLimited

    try:
        return run_job(data, job_id=job_id, attempt=2)
    except RateLimited:
        return None


def test_limit_key_names_the_host_only_when_all_webhooks_share_it() -> None:
    from jobq_plugin_notification.hostlimit import job_limit_key

    one = {"type": "webhook", "recipients": ["https://hooks.example/a?token=x", {"url": "https://hooks.example/b"}]}
    assert job_limit_key(one) == "notifications:webhook:hooks.example"
    assert job_limit_key({**one, "recipients": ["https://a.example/", "https://b.example/"]}) is None
    assert job_limit_key({"type": "email", "recipients": ["a@example.test"]}) is None
