"""Fixtures for jobq's own tests and for plugin authors (a pytest plugin, loaded automatically).

``jobq_settings`` points at the Redis of ``JOBQ_TEST_REDIS_URL`` under a key prefix of its own, deleted
afterwards; when that is unset, at an in-process fakeredis with Lua (``pip install "jobq[testing]"``).
``REDIS_URL`` is never read here: a shell with a production URL exported must not run tests on it.
``jobq_harness`` runs real workers in background threads and waits on job states with a deadline.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from .config import Settings
from .jobs import Job
from .keys import delete_prefix
from .queue import QueueManager, make_client
from .spec import QueueSpec
from .waiting import wait_until
from .worker import Worker

TERMINAL = ("completed", "failed", "cancelled")


TEST_REDIS_URL = "JOBQ_TEST_REDIS_URL"
FAKE_URL = "fakeredis://jobq-tests"


def redis_test_url() -> str:
    """``JOBQ_TEST_REDIS_URL``, else the in-process fakeredis (``fakeredis://jobq-tests``)."""
    url = os.environ.get(TEST_REDIS_URL)
    if url:
        return url
    try:
        import fakeredis  # noqa: F401
        import lupa  # noqa: F401
    except ImportError:
        pytest.fail(f"no test Redis: set {TEST_REDIS_URL}=redis://127.0.0.1:6379/0, or "
                    "pip install 'jobq[testing]' to run on fakeredis with Lua", pytrace=False)
    return FAKE_URL


class Canary:
    """A listener on 127.0.0.1 that counts every connection it accepts: an SSRF test asserts it
    stays at 0."""

    def __init__(self, port: int = 0) -> None:
        import socket

        self.sock = socket.create_server(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.sock.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:  # includes the accept timeout
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


class Harness:
    """Real workers against real Redis, for tests."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.manager = QueueManager(settings)
        self.workers: list[tuple[Worker, threading.Thread]] = []

    def start(self, *specs: QueueSpec, **worker_options: Any) -> Worker:
        """Start a worker for ``specs`` in a background thread; returns once it is serving."""
        for s in specs:
            self.manager.specs[s.name] = s
            self.manager._known.add(s.name)
        worker = Worker(list(specs), self.settings, **worker_options)
        errors: list[BaseException] = []

        def target() -> None:
            try:
                asyncio.run(worker.run())
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=target, daemon=True, name=f"jobq-worker-{specs[0].name}")
        thread.start()
        wait_until(lambda: worker.ready or errors or not thread.is_alive(), 15, message="worker start")
        if errors:
            raise errors[0]
        self.workers.append((worker, thread))
        return worker

    def serves(self, queue: str) -> bool:
        return any(queue in (s.name for s in w.specs) for w, t in self.workers if t.is_alive())

    def wait(self, queue: str, job_id: str, timeout: float = 30.0, states: tuple[str, ...] = TERMINAL) -> Job:
        def check() -> Job | None:
            job = self.manager.get_job(queue, job_id)
            return job if job is not None and job.state in states else None

        return wait_until(check, timeout, message=f"job {queue}/{job_id} to reach {states}")

    def run(self, spec: QueueSpec, data: Any, *, job_id: str | None = None, timeout: float = 30.0,
            **options: Any) -> Job:
        """Enqueue ``data`` on ``spec``'s queue (starting a worker if none serves it) and wait for the end."""
        if not self.serves(spec.name):
            self.start(spec)
        job = self.manager.add_job(spec.name, job_id, data, **options)
        return self.wait(spec.name, job.id, timeout)

    def stop(self, worker: Worker | None = None, timeout: float = 30.0) -> None:
        for w, t in list(self.workers):
            if worker is None or w is worker:
                w.stop()
                t.join(timeout)
                self.workers.remove((w, t))

    def close(self) -> None:
        self.stop()
        self.manager.shutdown()


def make_test_settings(tmp_path: Any = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        redis_url=redis_test_url(), prefix=f"jobqt-{uuid.uuid4().hex[:10]}", lease_seconds=5.0,
        stall_interval=1.0, shutdown_grace=5.0, socket_timeout=5.0,
    )
    if tmp_path is not None:
        values["storage_url"] = str(tmp_path / "jobq-storage")
    values.update(overrides)
    return Settings.from_env(**values)


class S3Server:
    """A moto S3 server on loopback (``jobq_s3``); s3fs and boto3 find it through ``AWS_ENDPOINT_URL``."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def make_bucket(self, name: str) -> str:
        """Create bucket ``name``; returns its ``s3://`` URL (a value for ``STORAGE_URL``)."""
        import boto3

        boto3.client("s3").create_bucket(Bucket=name)
        return f"s3://{name}"


@pytest.fixture
def jobq_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    import s3fs
    from moto.server import ThreadedMotoServer

    s3fs.S3FileSystem.clear_instance_cache()  # fsspec caches filesystems; a cached one knows an old endpoint
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    try:
        yield S3Server(endpoint)
    finally:
        server.stop()
        s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def jobq_settings(tmp_path: Any) -> Iterator[Settings]:
    settings = make_test_settings(tmp_path)
    yield settings
    client = make_client(settings)
    try:
        delete_prefix(client, settings.prefix)
    finally:
        client.close()


@pytest.fixture
def jobq_harness(jobq_settings: Settings) -> Iterator[Harness]:
    h = Harness(jobq_settings)
    try:
        yield h
    finally:
        h.close()


class RedisServer:
    """A ``redis-server`` of one test's own on a free loopback port, for what cannot be done to the
    shared one: filling it to ``maxmemory`` (``fill()``), stopping it."""

    def __init__(self) -> None:
        import socket
        import subprocess

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--maxmemory-policy", "noeviction"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(port=self.port, socket_timeout=5)
        try:
            wait_until(self._pings, 10, message="a private redis-server to answer")
        except BaseException:
            self.close()
            raise

    def _pings(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.ConnectionError:
            return False

    def fill(self) -> None:
        """Put Redis over its ``maxmemory``: from now on it refuses every write that needs memory."""
        used = int(self.client.info("memory")["used_memory"])
        self.client.config_set("maxmemory", used - 64 * 1024)
        try:
            self.client.set("jobq-fill-probe", "x")
        except redis.exceptions.OutOfMemoryError:
            return
        raise AssertionError("Redis still accepts writes after lowering maxmemory")

    def unfill(self) -> None:
        self.client.config_set("maxmemory", 0)

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def jobq_redis_server() -> Iterator[RedisServer]:
    """A private :class:`RedisServer`; the test is skipped where ``redis-server`` is not installed."""
    import shutil

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer()
    try:
        yield server
    finally:
        server.close()

CHROMIUM = os.environ.get("JOBQ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """The system's headless Chromium (Debian package) driven by Playwright; never a downloaded browser.

    Module-scoped: Playwright's sync API runs an event loop in this thread while it is open, and a
    later test calling ``asyncio.run`` would find it running.

    Yields a Playwright ``Browser``; open ``browser.new_context()`` per test and close it.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; the browser is the system chromium)")
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (or set JOBQ_CHROMIUM)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def jobq_spans() -> Iterator[Any]:
    """jobq's tracing on, into an in-memory exporter (``jobq_spans.get_finished_spans()``); needs
    ``jobq[otel]``. Tracing is off again afterwards."""
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError:
        pytest.skip("opentelemetry-sdk is not installed (pip install 'jobq[otel]')")
    from . import tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    try:
        yield exporter
    finally:
        tracing.disable()


def cli_invoker(settings: Settings, monkeypatch: pytest.MonkeyPatch, *specs: QueueSpec) -> Any:
    """``invoke("stats", "--json", input=None)``: the ``jobq`` CLI in-process (click's runner) on
    ``settings``' Redis and prefix, with a plugin host that declares exactly ``specs``."""
    from click.testing import CliRunner

    from .cli import Ctx, cli
    from .hookspecs import hookimpl
    from .plugins import PluginHost

    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("JOBQ_PREFIX", settings.prefix)
    class Queues:
        @hookimpl
        def jobq_queues(self) -> list[QueueSpec]:
            return list(specs)

    host = PluginHost(group="jobq.none").load(extra=[Queues()])

    def invoke(*args: str, input: str | None = None) -> Any:
        return CliRunner().invoke(cli, list(args), obj=Ctx(host), input=input, catch_exceptions=False)

    return invoke

