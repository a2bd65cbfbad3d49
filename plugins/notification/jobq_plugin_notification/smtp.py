"""Email over SMTP with the standard library, one session per job, in a worker thread.

``smtplib`` is used rather than an async client: it is in the standard library, covers plain,
STARTTLS and implicit TLS with AUTH, and one job sends a handful of messages over one session,
so a thread per job costs nothing measurable. The server's name goes through the outbound policy
and the session connects to the checked address, while TLS verifies the certificate against the
configured hostname.
"""

from __future__ import annotations

import email.utils
import smtplib
import socket
import ssl
import threading
from collections.abc import Callable
from email.message import EmailMessage

from jobq.outbound import DestinationNotAllowed, ResolutionFailed

from .config import NotificationConfig
from .outcome import (
    ERR_AUTH,
    ERR_DELIVERY_FAILED,
    ERR_DELIVERY_REJECTED,
    ERR_DELIVERY_TIMEOUT,
    ERR_DESTINATION_NOT_ALLOWED,
    Outcome,
    delivered,
    failed,
    retry,
)
from .recipients import Recipient
from .render import Email

ERR_TLS = "ERR_TLS"
OnOutcome = Callable[[Recipient, Outcome], None]


def build_message(cfg: NotificationConfig, recipient: Recipient, content: Email) -> EmailMessage:
    """A multipart/alternative message (plain text and HTML) with a Message-ID stable across retries."""
    _name, sender = email.utils.parseaddr(cfg.smtp_from)
    msg = EmailMessage()
    msg["From"] = cfg.smtp_from
    msg["To"] = recipient.target
    msg["Subject"] = content.subject
    msg["Date"] = email.utils.formatdate(usegmt=True)
    msg["Message-ID"] = f"<{recipient.delivery_id}@{sender.rpartition('@')[2]}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(content.text)
    msg.add_alternative(content.html, subtype="html")
    return msg


class _PinnedSMTP(smtplib.SMTP):
    """Connects to a checked address; ``self._host`` (STARTTLS's server name) stays the configured host."""

    def __init__(self, hostname: str, address: str, timeout: float) -> None:
        self._address = address
        super().__init__(local_hostname=socket.gethostname() or "localhost", timeout=timeout)
        self._host = hostname  # what STARTTLS checks the certificate against (set by __init__ only)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return super()._get_socket(self._address, port, timeout)


class _PinnedSMTPSSL(smtplib.SMTP_SSL):
    """Implicit TLS to a checked address, certificate verified against the configured host."""

    def __init__(self, hostname: str, address: str, timeout: float, context: ssl.SSLContext) -> None:
        self._address = address
        super().__init__(local_hostname=socket.gethostname() or "localhost", timeout=timeout, context=context)
        self._host = hostname

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return super()._get_socket(self._address, port, timeout)


def _tls_context(cfg: NotificationConfig) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cfg.smtp_ca_file or None)


def _connect(cfg: NotificationConfig, addresses: list[str]) -> smtplib.SMTP:
    error: Exception | None = None
    for address in addresses:
        smtp: smtplib.SMTP = (
            _PinnedSMTPSSL(cfg.smtp_host, address, cfg.timeout, _tls_context(cfg))
            if cfg.smtp_security == "tls"
            else _PinnedSMTP(cfg.smtp_host, address, cfg.timeout)
        )
        try:
            smtp.connect(cfg.smtp_host, cfg.smtp_port)
            return smtp
        except ssl.SSLError:
            smtp.close()
            raise
        except (OSError, smtplib.SMTPException) as exc:
            smtp.close()
            error = exc
    assert error is not None
    raise error


def _reply(exc: smtplib.SMTPResponseException) -> str:
    text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
    return f"{exc.smtp_code} {' '.join(text.split())[:160]}"


def _by_reply(code: int, message: str) -> Outcome:
    """5xx replies are final for that message; 4xx (greylisting, mailbox busy) are retried."""
    if 500 <= code < 600:
        return failed(ERR_DELIVERY_REJECTED, message)
    return retry(ERR_DELIVERY_FAILED, message)


def _session_failure(exc: Exception) -> Outcome:
    if isinstance(exc, DestinationNotAllowed):
        return failed(ERR_DESTINATION_NOT_ALLOWED, str(exc))
    if isinstance(exc, ssl.SSLCertVerificationError):
        return failed(ERR_TLS, f"SMTP server certificate not trusted: {exc.verify_message}")
    if isinstance(exc, ssl.SSLError):
        return failed(ERR_TLS, f"TLS with the SMTP server failed: {exc.reason or type(exc).__name__}")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return failed(ERR_AUTH, f"SMTP authentication refused ({exc.smtp_code})")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return failed(ERR_TLS if "STARTTLS" in str(exc).upper() else ERR_AUTH, f"SMTP server: {exc}")
    if isinstance(exc, smtplib.SMTPResponseException):
        return _by_reply(exc.smtp_code, f"SMTP server answered {_reply(exc)}")
    if isinstance(exc, TimeoutError | socket.timeout):
        return retry(ERR_DELIVERY_TIMEOUT, "SMTP server timed out")
    if isinstance(exc, ResolutionFailed):
        return retry(exc.code, str(exc))
    if isinstance(exc, OSError | smtplib.SMTPException):
        return retry(ERR_DELIVERY_FAILED, f"SMTP connection failed: {type(exc).__name__}: {exc}"[:200])
    raise exc


def _open(cfg: NotificationConfig) -> smtplib.SMTP:
    addresses = cfg.policy.resolve(cfg.smtp_host, cfg.smtp_port)
    smtp = _connect(cfg, addresses)
    try:
        if cfg.smtp_security == "starttls":
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise smtplib.SMTPNotSupportedError("the server does not offer STARTTLS (SMTP_SECURITY=starttls)")
            smtp.starttls(context=_tls_context(cfg))
            smtp.ehlo()
        if cfg.smtp_username:
            smtp.login(cfg.smtp_username, cfg.smtp_password)
    except BaseException:
        smtp.close()
        raise
    return smtp


def send_smtp(
    cfg: NotificationConfig,
    items: list[tuple[Recipient, EmailMessage]],
    on_outcome: OnOutcome,
    stop: threading.Event | None = None,
) -> None:
    """Send each message over one session, reporting each recipient's outcome as soon as it is known.

    :param stop: set when the attempt is abandoned (timeout): no further message is sent, so the
        next attempt cannot overlap this thread on the same recipient.
    """
    if not items:
        return
    try:
        smtp = _open(cfg)
    except Exception as exc:  # one classification for the whole batch; unexpected errors re-raise
        outcome = _session_failure(exc)
        for recipient, _msg in items:
            on_outcome(recipient, outcome)
        return
    _name, sender = email.utils.parseaddr(cfg.smtp_from)
    try:
        for n, (recipient, msg) in enumerate(items):
            if stop is not None and stop.is_set():
                return
            try:
                smtp.send_message(msg, from_addr=sender, to_addrs=[recipient.target])
                outcome = delivered()
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()), (550, b""))
                reply = " ".join(text.decode(errors="replace").split())[:160]
                outcome = _by_reply(code, f"recipient refused: {code} {reply}")
            except smtplib.SMTPResponseException as exc:
                outcome = _by_reply(exc.smtp_code, f"SMTP server answered {_reply(exc)}")
            except (OSError, smtplib.SMTPException) as exc:  # the session is gone: the rest waits for a retry
                outcome = _session_failure(exc)
                for later, _msg in items[n:]:
                    on_outcome(later, outcome)
                return
            on_outcome(recipient, outcome)
            if outcome.status != "delivered":
                try:
                    smtp.rset()
                except (OSError, smtplib.SMTPException) as exc:
                    outcome = _session_failure(exc)
                    for later, _msg in items[n + 1 :]:
                        on_outcome(later, outcome)
                    return
    finally:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()
