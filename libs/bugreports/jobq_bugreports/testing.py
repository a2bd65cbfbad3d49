"""Helpers for tests of the intake API, in this package's and in others' (a real server, not a mock)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from .server import ServerLimits, server_config


@contextmanager
def serve(app: Any, limits: ServerLimits | None = None) -> Iterator[httpx.Client]:
    """Run ``app`` as ``jobq api`` does (uvicorn, :func:`server_config`) on 127.0.0.1 (port 0) in a
    thread; yield a client for it."""
    server = uvicorn.Server(server_config(app, log_level="warning", limits=limits))
    thread = threading.Thread(target=server.run, name="intake-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=10)
