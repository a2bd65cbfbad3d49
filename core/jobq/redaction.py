"""Keep secrets out of failure records, logs and events."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any

from .jobs import REDACTED

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")
# name: value, name=value, and the (b'Name', b'value') pairs httpcore and hpack log at DEBUG
_AUTH_HEADER = re.compile(r"(?i)\b(authorization|x-api-key|api[-_]?key|token|password|secret|cookie)"
                          r"(['\"]?\s*(?:[:=]|,\s*b?(?=['\"]))\s*['\"]?)"
                          r"(bearer\s+|basic\s+|token\s+|aws4-hmac-sha256\s+)?[^\s'\",}]+")


def secret_values(secrets: Any) -> list[str]:
    """Every string leaf of a secrets object worth scrubbing (4 characters or more), longest first."""
    found: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, str):
            if len(v) >= 4:
                found.append(v)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list | tuple):
            for x in v:
                walk(x)

    walk(secrets)
    return sorted(set(found), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace known secret values, URL credentials and credential-looking pairs in ``text``."""
    for s in secrets:
        if s in text:
            text = text.replace(s, REDACTED)
    text = _USERINFO.sub(lambda m: m.group(1) + REDACTED + "@", text)
    return _AUTH_HEADER.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)


# --- logs ------------------------------------------------------------------------------------
_log_secrets: ContextVar[tuple[str, ...]] = ContextVar("jobq_log_secrets", default=())


@contextlib.contextmanager
def secrets_in_logs(values: Iterable[str]) -> Iterator[None]:
    """Scrub ``values`` from every log record emitted in this context: this code, the tasks it
    starts and the threads it hands work to (``asyncio.to_thread`` copies the context).

    For values a vendor may echo back that only the job knows (tokens resolved at run time):
    library loggers such as httpcore print response headers verbatim at DEBUG.
    """
    found = {v for v in values if isinstance(v, str) and len(v) >= 4}
    token = _log_secrets.set(tuple(sorted(found | set(_log_secrets.get()), key=len, reverse=True)))
    try:
        yield
    finally:
        _log_secrets.reset(token)


class LogRedactor(logging.Filter):
    """A handler filter: the message, traceback and stack of each record, redacted.

    On a handler rather than a logger, because a logger's filters skip records of its children
    (``httpcore.http11`` under ``httpcore``), and a handler sees every logger that propagates.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _log_secrets.get()
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler's own error path
            return True
        clean = redact(message, secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, secrets)
        return True


def redact_logs(handlers: Iterable[logging.Handler] | None = None) -> LogRedactor:
    """Put one :class:`LogRedactor` on ``handlers`` (default: the root logger's); returns it."""
    chosen = list(logging.getLogger().handlers if handlers is None else handlers)
    found = [f for h in chosen for f in h.filters if isinstance(f, LogRedactor)]
    redactor = found[0] if found else LogRedactor()
    for h in chosen:
        if redactor not in h.filters:
            h.addFilter(redactor)
    return redactor
