"""The intake API (Starlette): ``POST /api/v1/reports`` and ``GET /api/v1/reports/{id}``.

Handlers are async only for I/O with the client; parsing JSON, the database and Redis run in a
worker thread (:class:`Intake` is blocking), so a 60 MB replay never stalls other requests.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

from jobq import ConfigError, QueueSpec, Settings
from jobq.queue import QueueManager
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .intake import (
    BodyTooLarge,
    Intake,
    QueueUnavailable,
    RequestInvalid,
    StoreUnavailable,
    check_project_payloads,
    fallback_specs,
)
from .projects import API_KEYS, PROJECTS_FILE, ApiKeys, Project, load_projects
from .store import ReportStore
from .tracing import TraceRequests

log = logging.getLogger(__name__)

MAX_BODY = "JOBQ_API_MAX_BODY"
DEFAULT_MAX_BODY = 64 * 1024 * 1024
API_KEY_HEADER = "x-api-key"


def error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    """Every error answer has the same shape: ``{"error": {"code", "message", ...}}``."""
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with :class:`BodyTooLarge` as soon as it passes ``limit`` bytes:
    a lying or absent ``Content-Length`` never makes us buffer more than the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body of {declared} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise RequestInvalid([{"field": "(body)", "message": "is not UTF-8"}]) from None
    except json.JSONDecodeError as exc:
        message = f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        raise RequestInvalid([{"field": "(body)", "message": message}]) from None
    except RecursionError:
        raise RequestInvalid([{"field": "(body)", "message": "is nested too deeply"}]) from None


class IntakeApp:
    """The routes, bound to one :class:`Intake`, its API keys and the body limit."""

    def __init__(self, intake: Intake, api_keys: ApiKeys, max_body: int) -> None:
        self.intake = intake
        self.api_keys = api_keys
        self.max_body = max_body

    def _project(self, request: Request) -> str | None:
        return self.api_keys.project_for(request.headers.get(API_KEY_HEADER))

    async def create_report(self, request: Request) -> Response:
        project_id = self._project(request)
        if project_id is None:
            return error(401, "ERR_UNAUTHORIZED", f"missing or unknown {API_KEY_HEADER} header")
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return error(415, "ERR_UNSUPPORTED_MEDIA_TYPE", "send the report as application/json")
        try:
            raw = await read_body(request, self.max_body)
            report = await run_in_threadpool(self._create, project_id, raw)
        except ClientDisconnect:
            return Response(status_code=400)
        except BodyTooLarge as exc:
            return error(413, "ERR_BODY_TOO_LARGE", str(exc), limit=self.max_body)
        except RequestInvalid as exc:
            return error(400, "ERR_INVALID_REQUEST", str(exc), errors=exc.errors)
        except QueueUnavailable as exc:
            return _unavailable("ERR_QUEUE_UNAVAILABLE", str(exc))
        except StoreUnavailable as exc:
            return _unavailable("ERR_STORE_UNAVAILABLE", str(exc))
        return JSONResponse(report, status_code=201, headers={"Location": f"/api/v1/reports/{report['id']}"})

    def _create(self, project_id: str, raw: bytes) -> dict[str, Any]:
        return self.intake.create(project_id, _decode(raw))

    async def get_report(self, request: Request) -> Response:
        project_id = self._project(request)
        if project_id is None:
            return error(401, "ERR_UNAUTHORIZED", f"missing or unknown {API_KEY_HEADER} header")
        report_id = request.path_params["report_id"]
        try:
            report = await run_in_threadpool(self.intake.show, project_id, report_id)
        except StoreUnavailable as exc:
            return _unavailable("ERR_STORE_UNAVAILABLE", str(exc))
        if report is None:
            return error(404, "ERR_NOT_FOUND", f"no report {report_id!r} in this project")
        return JSONResponse(report)

    async def health(self, request: Request) -> Response:
        """Liveness for load balancers: can we reach Redis and the database? No details leak."""

        def check() -> bool:
            try:
                self.intake.manager.redis.ping()
                self.intake.store.get_report("health-check")
            except Exception:
                return False
            return True

        ok = await run_in_threadpool(check)
        return JSONResponse({"status": "ok" if ok else "unavailable"}, status_code=200 if ok else 503)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "ERR_NOT_FOUND", 405: "ERR_METHOD_NOT_ALLOWED"}
    resp = error(exc.status_code, codes.get(exc.status_code, f"ERR_HTTP_{exc.status_code}"), exc.detail)
    resp.headers.update(exc.headers or {})
    return resp


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
    return error(500, "ERR_INTERNAL", "internal error; nothing was created unless a 201 was sent")


def _unavailable(code: str, message: str) -> JSONResponse:
    resp = error(503, code, f"{message}; the report was not created, retry later")
    resp.headers["Retry-After"] = "5"
    return resp


def create_app(
    *, settings: Settings | None = None, store: ReportStore | None = None,
    api_keys: ApiKeys | None = None, projects: Mapping[str, Project] | None = None,
    specs: list[QueueSpec] | None = None, max_body: int | None = None, env: Mapping[str, str] | None = None,
) -> Starlette:
    """Build the ASGI app. Anything not given is read from the environment (``env`` or ``os.environ``).

    :param settings: jobq settings (Redis URL, prefix...), default ``Settings.from_env()``.
    :param store: the report store, default ``ReportStore.from_env()`` (closed with the app).
    :param api_keys: default parsed from ``JOBQ_API_KEYS``; the app refuses to start without any.
    :param projects: default read from ``JOBQ_PROJECTS_FILE``.
    :param specs: queue specs used to validate payloads at enqueue, default those of the installed
        plugins plus intake-only specs for the intake queues no installed plugin declares.
    :param max_body: request body limit in bytes, default ``JOBQ_API_MAX_BODY`` or 64 MiB.
    """
    e = os.environ if env is None else env
    settings = settings or Settings.from_env(dict(e))
    if api_keys is None:
        api_keys = ApiKeys.parse(e.get(API_KEYS))
    if not len(api_keys):
        raise ConfigError(f"{API_KEYS} is empty: no project could send reports")
    if projects is None:
        projects = load_projects(e.get(PROJECTS_FILE))
    if max_body is None:
        raw = e.get(MAX_BODY) or str(DEFAULT_MAX_BODY)
        if not raw.isdigit() or int(raw) < 1024:
            raise ConfigError(f"{MAX_BODY}={raw!r} must be a number of bytes, at least 1024")
        max_body = int(raw)
    specs = specs if specs is not None else intake_specs()
    check_project_payloads(projects, specs)
    owned_store = store is None
    store = store or ReportStore.from_env(e)
    manager = QueueManager(settings, specs, strict=False)
    routes = IntakeApp(Intake(store, manager, projects), api_keys, max_body)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            manager.shutdown()
            if owned_store:
                store.close()

    app = Starlette(
        routes=[
            Route("/api/v1/reports", routes.create_report, methods=["POST"]),
            Route("/api/v1/reports/{report_id}", routes.get_report, methods=["GET"]),
            Route("/health", routes.health, methods=["GET"]),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        middleware=[Middleware(TraceRequests)],
    )
    app.state.intake = routes.intake
    return app


def intake_specs() -> list[QueueSpec]:
    """Specs of the installed plugins for the intake queues, intake-only specs for the others."""
    from jobq.plugins import load_plugins

    found: dict[str, QueueSpec] = {}
    try:
        host = load_plugins()
        found = host.specs
        for name, reason in host.failures.items():
            log.warning("plugin %s is broken (%s): its payloads are checked by workers only", name, reason)
    except Exception as exc:  # a broken plugin must not stop report intake
        log.warning("could not load plugins (%s); payloads are checked by workers only", exc)
    return [found.get(s.name, s) for s in fallback_specs()]
