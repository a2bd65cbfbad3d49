"""Secrets out of log records: the handler filter ``jobq`` puts on every root handler."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator

import pytest
from jobq.redaction import LogRedactor, redact, redact_logs, secrets_in_logs

TOKEN = "tok-3c1e5d7f3a9"


@pytest.fixture
def log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger tree of its own whose records reach one handler carrying the redactor."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    parent = logging.getLogger("jobq-test-vendor")
    parent.addHandler(handler)
    parent.setLevel(logging.DEBUG)
    parent.propagate = False
    redact_logs([handler])
    try:
        yield parent, stream
    finally:
        parent.removeHandler(handler)


def test_child_loggers_and_echoed_header_pairs_are_redacted(log: tuple[logging.Logger, io.StringIO]) -> None:
    _parent, stream = log
    child = logging.getLogger("jobq-test-vendor.http11")  # as httpcore.http11 under httpcore
    child.debug("receive_response_headers.complete return_value=%r",
                (b"HTTP/1.1", 401, b"Unauthorized", [(b"Authorization", b"Bearer abc"), (b"X-Auth-Token", b"xyz"),
                                                     (b"Set-Cookie", b"sid=s3cr3t"), (b"X-Echo", TOKEN.encode())]))
    with secrets_in_logs([TOKEN]):
        child.debug("echo %s", TOKEN)
    text = stream.getvalue()
    for leaked in ("abc", "xyz", "s3cr3t"):
        assert leaked not in text
    assert text.count(TOKEN) == 1, "outside secrets_in_logs an unknown value is not a secret"
    assert "echo [redacted]" in text and "b'X-Echo'" in text


def test_tracebacks_are_redacted(log: tuple[logging.Logger, io.StringIO]) -> None:
    parent, stream = log
    with secrets_in_logs([TOKEN]):
        try:
            raise RuntimeError(f"vendor said {TOKEN}")
        except RuntimeError:
            parent.exception("sync failed")
    assert "RuntimeError: vendor said [redacted]" in stream.getvalue() and TOKEN not in stream.getvalue()


def test_secrets_follow_tasks_and_threads_and_end_with_the_block(log: tuple[logging.Logger, io.StringIO]) -> None:
    parent, stream = log

    async def in_task() -> None:
        parent.debug("task %s", TOKEN)

    async def main() -> None:
        with secrets_in_logs([TOKEN]):
            await asyncio.create_task(in_task())
            await asyncio.to_thread(parent.debug, "thread %s", TOKEN)
            with secrets_in_logs(["other-secret"]):
                parent.debug("nested %s other-secret", TOKEN)
        parent.debug("after %s", TOKEN)

    asyncio.run(main())
    assert stream.getvalue().splitlines() == [
        "jobq-test-vendor task [redacted]", "jobq-test-vendor thread [redacted]",
        "jobq-test-vendor nested [redacted] [redacted]", f"jobq-test-vendor after {TOKEN}"]


def test_redact_logs_puts_one_filter_on_each_handler() -> None:
    a, b = logging.NullHandler(), logging.NullHandler()
    first = redact_logs([a])
    assert redact_logs([a, b]) is first
    assert [type(f) for f in a.filters] == [type(f) for f in b.filters] == [LogRedactor]


def test_credential_pairs_in_every_spelling() -> None:
    for text in ("Authorization: Bearer abc", "token=abc", '"api_key": "abc"', "(b'x-api-key', b'abc')",
                 "{'password': 'abc'}", "Authorization: AWS4-HMAC-SHA256 abc"):
        assert "abc" not in redact(text), text
    assert redact("refreshing the token, attempt 2") == "refreshing the token, attempt 2"
