"""Fixtures for the dashboard tests: users with fast hashes, the app on the real Redis, a signed-in client."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # importlib mode: make the support module importable

from dashboard_support import PASSWORDS, SPEC, DashPlugin, sign_in
from jobq.plugins import PluginHost
from jobq_dashboard.app import create_app
from jobq_dashboard.auth import User, hash_password
from starlette.testclient import TestClient


@pytest.fixture(scope="session")
def users() -> dict[str, User]:
    return {"ada": User("ada", "admin", hash_password(PASSWORDS["ada"], log2n=10)),
            "vic": User("vic", "viewer", hash_password(PASSWORDS["vic"], log2n=10))}


@pytest.fixture
def plugin_host() -> PluginHost:
    return PluginHost(group="jobq.none").load(extra=[DashPlugin()])


@pytest.fixture
def app(jobq_settings: Any, users: dict[str, User], plugin_host: PluginHost) -> Any:
    return create_app(jobq_settings, users=users, secret_key="test-secret", host=plugin_host)


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture
def admin(client: TestClient) -> TestClient:
    assert sign_in(client, "ada").status_code == 303
    return client


@pytest.fixture
def manager(jobq_harness: Any) -> Any:
    jobq_harness.manager.specs[SPEC.name] = SPEC
    jobq_harness.manager._known.add(SPEC.name)
    return jobq_harness.manager
