"""Helpers shared by the dashboard tests (imported by conftest and the test modules)."""

from __future__ import annotations

import re
from typing import Any

from jobq import JobFailed, QueueSpec, hookimpl
from starlette.testclient import TestClient

PASSWORDS = {"ada": "ada-admin-pw", "vic": "vic-viewer-pw"}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def flaky(job: Any) -> dict[str, Any]:
    """Fails its first attempt for good (retries=0); an operator's retry then completes it."""
    if job.data.get("always") or (job.data.get("fail_first") and job.attempt == 1):
        raise JobFailed(job.data.get("message", "first attempt fails"), code=job.data.get("code", "ERR_FIRST"),
                        retryable=False)
    return {"ok": True, "n": job.data.get("n")}


SPEC = QueueSpec(name="dash", handler=flaky, concurrency=4, retries=0, secret_fields=("api_token",))


class DashPlugin:
    @hookimpl
    def jobq_queues(self) -> list[QueueSpec]:
        return [SPEC]


def csrf_of(html: str) -> str:
    m = CSRF.search(html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def sign_in(client: TestClient, name: str, password: str | None = None, prefix: str = "") -> Any:
    page = client.get(f"{prefix}/login")
    return client.post(f"{prefix}/login", data={"username": name, "password": password or PASSWORDS[name],
                                                "csrf": csrf_of(page.text), "next": f"{prefix}/"},
                       follow_redirects=False)
