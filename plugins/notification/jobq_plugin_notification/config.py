"""Settings read from the environment at handler time, cached per distinct set of values.

Secrets (SMTP password, SendGrid key, webhook secrets) are kept out of ``repr`` so that no log line
or traceback that prints the config shows them.
"""

from __future__ import annotations

import email.utils
import functools
import os
from collections.abc import Mapping

import attrs
from jobq import UnrecoverableError
from jobq.outbound import ALLOWLIST_ENV, PORTS_ENV, OutboundPolicy

from .payload import is_email, is_http_url, secret_list

SMTP_HOST = "SMTP_HOST"
SMTP_PORT = "SMTP_PORT"
SMTP_USERNAME = "SMTP_USERNAME"
SMTP_PASSWORD = "SMTP_PASSWORD"
SMTP_FROM = "SMTP_FROM"
SMTP_SECURITY = "SMTP_SECURITY"
SMTP_CA_FILE = "SMTP_CA_FILE"
SENDGRID_API_KEY = "SENDGRID_API_KEY"
SENDGRID_API_URL = "SENDGRID_API_URL"
WEBHOOK_SECRET = "WEBHOOK_SECRET"
TIMEOUT = "NOTIFICATION_TIMEOUT"
PARALLEL = "NOTIFICATION_MAX_PARALLEL"
TEMPLATE_DIR = "NOTIFICATION_TEMPLATE_DIR"

ENV_NAMES = (
    SMTP_HOST,
    SMTP_PORT,
    SMTP_USERNAME,
    SMTP_PASSWORD,
    SMTP_FROM,
    SMTP_SECURITY,
    SMTP_CA_FILE,
    SENDGRID_API_KEY,
    SENDGRID_API_URL,
    WEBHOOK_SECRET,
    TIMEOUT,
    PARALLEL,
    TEMPLATE_DIR,
    ALLOWLIST_ENV,
    PORTS_ENV,
)
SECURITY_MODES = ("none", "starttls", "tls")
DEFAULT_SENDGRID_URL = "https://api.sendgrid.com"
SLACK_HOSTS = frozenset({"hooks.slack.com", "hooks.slack-gov.com"})


class ConfigInvalid(UnrecoverableError):
    """A notification setting is missing or malformed; the operator has to fix it (not retried)."""

    code = "ERR_CONFIG"


@attrs.frozen(kw_only=True)
class NotificationConfig:
    """What the channels need: ``SMTP_*``, ``SENDGRID_*``, ``WEBHOOK_SECRET`` and ``NOTIFICATION_*``.

    :param timeout: seconds for each connect, read and write, on every channel.
    :param max_parallel: recipients of one job sent to at once (HTTP channels).
    """

    smtp_host: str = ""
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: str = attrs.field(default="", repr=False)
    smtp_from: str = ""
    smtp_security: str = "starttls"
    smtp_ca_file: str = ""
    sendgrid_api_key: str = attrs.field(default="", repr=False)
    sendgrid_api_url: str = DEFAULT_SENDGRID_URL
    webhook_secrets: tuple[str, ...] = attrs.field(default=(), repr=False)
    webhook_secret_error: str = ""
    timeout: float = 10.0
    max_parallel: int = 8
    template_dir: str = ""
    policy: OutboundPolicy = attrs.field(factory=OutboundPolicy)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NotificationConfig:
        e = os.environ if env is None else env
        return _cached(tuple((name, e.get(name, "")) for name in ENV_NAMES))

    @property
    def sender(self) -> str:
        """The bare address of ``SMTP_FROM`` (which may carry a display name)."""
        return email.utils.parseaddr(self.smtp_from)[1]

    def secrets(self) -> list[str]:
        """Every configured secret, for scrubbing text that might echo one."""
        return [s for s in (self.smtp_password, self.sendgrid_api_key, *self.webhook_secrets) if s]

    def check_email(self) -> None:
        """Raise :class:`ConfigInvalid` unless email can be sent (SendGrid or SMTP)."""
        if not is_email(self.sender):
            raise ConfigInvalid(f"{SMTP_FROM} must be the sender's address ('a@example.com' or 'Name <a@example.com>')")
        if self.sendgrid_api_key:
            if not is_http_url(self.sendgrid_api_url):
                raise ConfigInvalid(f"{SENDGRID_API_URL} must be an http(s) URL")
            return
        if not self.smtp_host:
            raise ConfigInvalid(f"set {SMTP_HOST} (or {SENDGRID_API_KEY}) to send email")
        if self.smtp_security not in SECURITY_MODES:
            raise ConfigInvalid(f"{SMTP_SECURITY} must be one of {', '.join(SECURITY_MODES)}")
        if self.smtp_username and self.smtp_security == "none":
            raise ConfigInvalid(
                f"{SMTP_USERNAME} is set but {SMTP_SECURITY}=none would send the password in "
                "clear text; use starttls or tls"
            )


def _number(env: dict[str, str], name: str, default: float, kind: type = float) -> float:
    raw = env.get(name) or ""
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigInvalid(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise ConfigInvalid(f"{name} must be positive")
    return value


@functools.lru_cache(maxsize=8)
def _cached(items: tuple[tuple[str, str], ...]) -> NotificationConfig:
    env = dict(items)
    port = int(_number(env, SMTP_PORT, 587, int))
    security = (env[SMTP_SECURITY] or ("tls" if port == 465 else "starttls")).strip().lower()
    secrets: tuple[str, ...] = ()
    secret_error = ""
    if env[WEBHOOK_SECRET].strip():
        parsed = secret_list(env[WEBHOOK_SECRET].strip())
        if parsed is None:
            secret_error = f"{WEBHOOK_SECRET} is not in the Standard Webhooks form (whsec_ + base64)"
        else:
            secrets = tuple(parsed)
    try:
        policy = OutboundPolicy.from_env({k: v for k, v in env.items() if v})
    except Exception as exc:  # ConfigError from the core: surface it with this plugin's reason code
        raise ConfigInvalid(str(exc)) from None
    return NotificationConfig(
        smtp_host=env[SMTP_HOST].strip(),
        smtp_port=port,
        smtp_username=env[SMTP_USERNAME],
        smtp_password=env[SMTP_PASSWORD],
        smtp_from=env[SMTP_FROM].strip(),
        smtp_security=security,
        smtp_ca_file=env[SMTP_CA_FILE].strip(),
        sendgrid_api_key=env[SENDGRID_API_KEY].strip(),
        sendgrid_api_url=(env[SENDGRID_API_URL].strip() or DEFAULT_SENDGRID_URL).rstrip("/"),
        webhook_secrets=secrets,
        webhook_secret_error=secret_error,
        timeout=_number(env, TIMEOUT, 10.0),
        max_parallel=int(_number(env, PARALLEL, 8, int)),
        template_dir=env[TEMPLATE_DIR].strip(),
        policy=policy,
    )
