"""Email through a real SMTP server (aiosmtpd: STARTTLS, implicit TLS, AUTH) and a SendGrid-shaped API."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from jobq import JobFailed, UnrecoverableError
from jobq.testing import Canary
from jobq_plugin_notification.config import NotificationConfig
from jobq_plugin_notification.recipients import build_recipients
from jobq_plugin_notification.render import Email
from jobq_plugin_notification.smtp import build_message, send_smtp
from notification_support import (
    SMTP_PASSWORD,
    SMTP_USER,
    SPECS,
    Certs,
    Receiver,
    SmtpServer,
    payload,
    run_job,
)
from openapi_schema_validator import OAS31Validator

# aiosmtpd warns when AUTH is allowed without STARTTLS; with implicit TLS the socket is encrypted anyway.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")

SENDGRID_KEY = "SG.canary-sendgrid-key-51f0c2"
SENDGRID = json.loads((SPECS / "sendgrid" / "mail-send.json").read_text())
SENDGRID_BODY = SENDGRID["components"]["requestBodies"]["PostMailSend"]["content"]["application/json"]["schema"]


@pytest.fixture
def smtp_env(notify_env: dict, certs: Certs, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    def configure(server: SmtpServer, security: str, *, auth: bool = True, **extra: str) -> None:
        env = {
            "SMTP_HOST": "localhost",
            "SMTP_PORT": str(server.port),
            "SMTP_SECURITY": security,
            "SMTP_FROM": "Bug Bot <bugs@example.com>",
            "SMTP_CA_FILE": str(certs.ca_file),
            "JOBQ_OUTBOUND_ALLOWLIST": "127.0.0.2,localhost",
        }
        if auth:
            env.update(SMTP_USERNAME=SMTP_USER, SMTP_PASSWORD=SMTP_PASSWORD)
        env.update(extra)
        for k, v in env.items():
            monkeypatch.setenv(k, v)

    return configure


def parse(raw: bytes) -> Any:
    return email.message_from_bytes(raw, policy=email.policy.default)


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_smtp_with_tls_and_auth(
    security: str, smtp_factory: Callable[..., SmtpServer], smtp_env: Callable[..., None]
) -> None:
    server = smtp_factory(security)
    smtp_env(server, security)
    result = run_job(payload("email", ["ann@example.com", "bob@example.org"]))
    assert result == {"type": "email", "recipientCount": 2, "successCount": 2, "failureCount": 0, "errors": []}
    mails = server.inbox.mails
    assert sorted(m.rcpt_tos[0] for m in mails) == ["ann@example.com", "bob@example.org"]
    assert all(m.tls and m.login == SMTP_USER and m.mail_from == "bugs@example.com" for m in mails)
    msg = parse(mails[0].content)
    assert msg["Subject"] == '[HIGH] New bug report: Checkout button <b>broken</b> & "crashes"'
    assert msg["From"] == "Bug Bot <bugs@example.com>" and msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "<script>x</script>" in text and "&lt;script&gt;" in html and "<script>" not in html
    assert msg["Message-ID"].endswith("@example.com>")


def test_message_id_is_stable_across_retries(
    smtp_factory: Callable[..., SmtpServer], smtp_env: Callable[..., None]
) -> None:
    server = smtp_factory("starttls")
    smtp_env(server, "starttls")
    server.inbox.rcpt_replies["busy@example.com"] = ["450 4.2.1 mailbox busy", "250 OK"]
    server.inbox.rcpt_replies["gone@example.com"] = ["550 5.1.1 no such user"]
    data = payload("email", ["ok@example.com", "busy@example.com", "gone@example.com"])
    with pytest.raises(JobFailed) as err:
        run_job(data, attempt=1)
    assert err.value.retryable and "1 of 3" in str(err.value) and "450" in str(err.value)
    result = run_job(data, attempt=2)
    assert result["successCount"] == 2 and result["failureCount"] == 1
    assert result["errors"][0]["code"] == "ERR_DELIVERY_REJECTED" and "550" in result["errors"][0]["message"]
    delivered = [m.rcpt_tos[0] for m in server.inbox.mails]
    assert sorted(delivered) == ["busy@example.com", "ok@example.com"]  # each exactly once


def test_plain_smtp_without_auth(smtp_factory: Callable[..., SmtpServer], smtp_env: Callable[..., None]) -> None:
    server = smtp_factory("none", auth=False)
    smtp_env(server, "none", auth=False)
    assert run_job(payload("email", ["ann@example.com"]))["successCount"] == 1
    assert not server.inbox.mails[0].tls and server.inbox.mails[0].login is None


def test_wrong_password_is_an_auth_failure_without_the_password(
    smtp_factory: Callable[..., SmtpServer], smtp_env: Callable[..., None]
) -> None:
    server = smtp_factory("starttls")
    smtp_env(server, "starttls", SMTP_PASSWORD="wrong-canary-password-77")
    with pytest.raises(UnrecoverableError) as err:
        run_job(payload("email", ["ann@example.com"]))
    assert err.value.code == "ERR_AUTH" and "canary" not in str(err.value)
    assert server.inbox.mails == []


def test_untrusted_certificate_is_refused(
    smtp_factory: Callable[..., SmtpServer], smtp_env: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = smtp_factory("tls")
    smtp_env(server, "tls")
    monkeypatch.delenv("SMTP_CA_FILE")
    with pytest.raises(UnrecoverableError) as err:
        run_job(payload("email", ["ann@example.com"]))
    assert err.value.code == "ERR_TLS" and server.inbox.mails == []


def test_starttls_required_but_not_offered(
    smtp_factory: Callable[..., SmtpServer], smtp_env: Callable[..., None]
) -> None:
    server = smtp_factory("none", auth=False)
    smtp_env(server, "starttls", auth=False)
    with pytest.raises(UnrecoverableError) as err:
        run_job(payload("email", ["ann@example.com"]))
    assert err.value.code == "ERR_TLS" and server.inbox.mails == []


def test_smtp_host_goes_through_the_outbound_policy(
    notify_env: dict, canary: Canary, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(canary.port),
        "SMTP_SECURITY": "none",
        "SMTP_FROM": "bugs@example.com",
    }.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(UnrecoverableError) as err:
        run_job(payload("email", ["ann@example.com"]))
    assert err.value.code == "ERR_DESTINATION_NOT_ALLOWED"
    assert canary.accepted == 0


def test_password_over_plain_smtp_is_a_config_error(notify_env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in {
        "SMTP_HOST": "localhost",
        "SMTP_SECURITY": "none",
        "SMTP_FROM": "bugs@example.com",
        "SMTP_USERNAME": "u",
        "SMTP_PASSWORD": SMTP_PASSWORD,
    }.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(UnrecoverableError) as err:
        run_job(payload("email", ["ann@example.com"]))
    assert err.value.code == "ERR_CONFIG" and SMTP_PASSWORD not in str(err.value)


@pytest.fixture
def sendgrid_env(notify_env: dict, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> Receiver:
    monkeypatch.setenv("SENDGRID_API_KEY", SENDGRID_KEY)
    monkeypatch.setenv("SENDGRID_API_URL", receiver.url(""))
    monkeypatch.setenv("SMTP_FROM", "Bug Bot <bugs@example.com>")
    return receiver


def test_sendgrid_requests_match_the_published_description(sendgrid_env: Receiver) -> None:
    sendgrid_env.respond("/v3/mail/send", (202, {}, b""), (202, {}, b""))
    result = run_job(payload("email", ["ann@example.com", "bob@example.org"]))
    assert result["successCount"] == 2
    hits = sendgrid_env.hits("/v3/mail/send")
    assert len(hits) == 2
    validator = OAS31Validator({**SENDGRID_BODY, "components": SENDGRID["components"]})
    for hit in hits:
        validator.validate(hit.json())
        assert hit.headers["authorization"] == f"Bearer {SENDGRID_KEY}"
    body = hits[0].json()
    assert body["from"] == {"email": "bugs@example.com", "name": "Bug Bot"}
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert "&lt;script&gt;" in body["content"][1]["value"]
    assert {h.json()["personalizations"][0]["to"][0]["email"] for h in hits} == {"ann@example.com", "bob@example.org"}


def test_sendgrid_errors_are_classified_and_keep_the_key_out(sendgrid_env: Receiver) -> None:
    sendgrid_env.respond("/v3/mail/send", (401, {}, json.dumps({"errors": [{"message": SENDGRID_KEY}]}).encode()))
    with pytest.raises(UnrecoverableError) as err:
        run_job(payload("email", ["ann@example.com"]), job_id="sg-1")
    assert err.value.code == "ERR_AUTH" and SENDGRID_KEY not in str(err.value)
    errors = {"errors": [{"field": "from.email", "message": f"unverified sender (key {SENDGRID_KEY})"}]}
    sendgrid_env.respond("/v3/mail/send", (400, {"Content-Type": "application/json"}, json.dumps(errors).encode()))
    with pytest.raises(UnrecoverableError) as err:
        run_job(payload("email", ["ann@example.com"]), job_id="sg-2")
    assert err.value.code == "ERR_DELIVERY_REJECTED"
    assert "from.email: unverified sender" in str(err.value) and SENDGRID_KEY not in str(err.value)
    sendgrid_env.respond("/v3/mail/send", (503, {}, b""))
    with pytest.raises(JobFailed) as err:
        run_job(payload("email", ["ann@example.com"]), job_id="sg-3")
    assert err.value.retryable


def test_an_abandoned_attempt_stops_sending(
    smtp_factory: Callable[..., SmtpServer], smtp_env: Callable[..., None]
) -> None:
    server = smtp_factory("starttls")
    smtp_env(server, "starttls")
    cfg = NotificationConfig.from_env()
    content = Email("s", "text", "<p>html</p>")
    items = [
        (r, build_message(cfg, r, content))
        for r in build_recipients("j", "email", ["a@example.com", "b@example.com", "c@example.com"])
    ]
    stop = threading.Event()
    seen: list[str] = []

    def on_outcome(recipient: object, outcome: object) -> None:
        seen.append(outcome.status)  # type: ignore[attr-defined]
        stop.set()  # the attempt timed out right after the first message

    send_smtp(cfg, items, on_outcome, stop)
    assert seen == ["delivered"] and len(server.inbox.mails) == 1
