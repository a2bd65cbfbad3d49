"""Fixtures for the notification tests; the servers themselves live in ``notification_support``."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # importlib mode: make the support module importable

from jobq.testing import Canary
from jobq_plugin_notification import handler
from notification_support import (
    NOTIFY_ENV,
    RECEIVER_HOST,
    WEBHOOK_SECRET,
    Certs,
    Inbox,
    Receiver,
    SmtpServer,
    authenticator,
    make_certs,
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def canary() -> Iterator[Canary]:
    c = Canary()
    yield c
    c.close()


@pytest.fixture
def notify_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A clean notification environment: a SQLite report store, 127.0.0.2 allow-listed, a webhook secret."""
    for name in NOTIFY_ENV:
        monkeypatch.delenv(name, raising=False)
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'reports.db'}",
        "JOBQ_OUTBOUND_ALLOWLIST": RECEIVER_HOST,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "NOTIFICATION_TIMEOUT": "3",
        "JOBQ_PREFIX": f"jobqt-notif-{uuid.uuid4().hex[:10]}",  # per-host webhook limits of this test alone
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    yield env
    handler.close_stores()


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def smtp_factory(certs: Certs) -> Iterator[Callable[..., SmtpServer]]:
    """Start aiosmtpd servers: ``security`` none | starttls | tls, AUTH required when ``auth``."""
    servers: list[SmtpServer] = []

    def make(security: str = "starttls", auth: bool = True) -> SmtpServer:
        kw: dict[str, Any] = {}
        if security == "tls":
            kw["ssl_context"] = certs.server
        elif security == "starttls":
            kw.update(tls_context=certs.server, require_starttls=True)
        if auth:
            # aiosmtpd only counts STARTTLS as TLS; an implicit-TLS socket is encrypted all the same.
            kw.update(authenticator=authenticator, auth_required=True, auth_require_tls=security == "starttls")
        server = SmtpServer(Inbox(), **kw)
        server.start()
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.stop()
