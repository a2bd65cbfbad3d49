"""Settings from the environment, and how answers are classified."""

from __future__ import annotations

import email.utils

import httpx
import pytest
from jobq import UnrecoverableError
from jobq_plugin_notification.config import NotificationConfig
from jobq_plugin_notification.outcome import from_response, retry_after_seconds

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwQ1m5ZlLc3Ek="


def test_defaults_and_secrets_kept_out_of_repr() -> None:
    cfg = NotificationConfig.from_env(
        {
            "SMTP_HOST": "mail.example.com",
            "SMTP_PASSWORD": "pw-canary-1234",
            "SENDGRID_API_KEY": "SG.key-canary",
            "WEBHOOK_SECRET": SECRET,
        }
    )
    assert (cfg.smtp_port, cfg.smtp_security, cfg.timeout, cfg.max_parallel) == (587, "starttls", 10.0, 8)
    assert cfg.sendgrid_api_url == "https://api.sendgrid.com" and cfg.webhook_secrets == (SECRET,)
    text = repr(cfg)
    assert "pw-canary" not in text and "SG.key" not in text and SECRET not in text
    assert NotificationConfig.from_env({"SMTP_PORT": "465"}).smtp_security == "tls"
    assert cfg.policy.allow_ports == frozenset({80, 443, 8080, 8443})  # the default policy, not "any port"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"SMTP_PORT": "smtp"}, "SMTP_PORT"),
        ({"NOTIFICATION_TIMEOUT": "-1"}, "NOTIFICATION_TIMEOUT"),
        ({"JOBQ_OUTBOUND_ALLOWLIST": "http://x/"}, "JOBQ_OUTBOUND_ALLOWLIST"),
    ],
)
def test_bad_settings_are_config_errors(env: dict, fragment: str) -> None:
    with pytest.raises(UnrecoverableError) as err:
        NotificationConfig.from_env(env)
    assert err.value.code == "ERR_CONFIG" and fragment in str(err.value)


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"SMTP_HOST": "m"}, "SMTP_FROM"),
        ({"SMTP_FROM": "a@example.com"}, "SMTP_HOST"),
        ({"SMTP_FROM": "a@example.com", "SMTP_HOST": "m", "SMTP_SECURITY": "ssl"}, "SMTP_SECURITY"),
        ({"SMTP_FROM": "a@example.com", "SENDGRID_API_KEY": "k", "SENDGRID_API_URL": "ftp://x"}, "SENDGRID_API_URL"),
    ],
)
def test_email_needs_a_complete_setup(env: dict, fragment: str) -> None:
    with pytest.raises(UnrecoverableError, match=fragment):
        NotificationConfig.from_env(env).check_email()


def test_retry_after_forms() -> None:
    assert retry_after_seconds("12") == 12
    assert retry_after_seconds(email.utils.formatdate(1_000_090, usegmt=True), now=1_000_000) == 90
    assert retry_after_seconds(None) == 30 and retry_after_seconds("soon") == 30
    assert retry_after_seconds("0") == 1 and retry_after_seconds("999999") == 3600


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, ("delivered", "")),
        (204, ("delivered", "")),
        (302, ("failed", "ERR_DELIVERY_REJECTED")),
        (400, ("failed", "ERR_DELIVERY_REJECTED")),
        (401, ("failed", "ERR_AUTH")),
        (403, ("failed", "ERR_AUTH")),
        (408, ("retry", "ERR_DELIVERY_FAILED")),
        (410, ("failed", "ERR_DELIVERY_REJECTED")),
        (429, ("retry", "ERR_RATE_LIMITED")),
        (500, ("retry", "ERR_DELIVERY_FAILED")),
        (503, ("retry", "ERR_DELIVERY_FAILED")),
    ],
)
def test_http_status_classification(status: int, expected: tuple[str, str]) -> None:
    outcome = from_response(httpx.Response(status, text="secret-echo body"), body_hint=True)
    assert (outcome.status, outcome.code) == expected and "secret-echo" not in outcome.message
