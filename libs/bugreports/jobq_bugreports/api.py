"""The intake API (Starlette): ``POST /api/v1/reports``, ``GET /api/v1/reports/{id}``, the OpenAPI
document and ``/health``.

Handlers are async only for I/O with the client; parsing JSON, the database and Redis run in a
worker thread (:class:`Intake` is blocking). Body limits are in :mod:`.body`, connection limits
in :mod:`.server`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

from jobq import ConfigError, QueueSpec, Settings
from jobq.limits import Admission
from jobq.queue import QueueManager
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .body import GIVE_BACK_ABOVE, DrainBody, decode, give_back_memory, read_body
from .erasure import ErasureIncomplete
from .intake import (
    BodyTooLarge,
    Intake,
    QueueUnavailable,
    RequestInvalid,
    StoreUnavailable,
    check_project_payloads,
    fallback_specs,
)
from .openapi import openapi_document
from .projects import API_KEYS, PROJECTS_FILE, READ_KEYS, ApiKeys, Project, load_projects
from .ratelimit import RequestLimiter
from .store import ReportStore
from .tracing import TraceRequests

log = logging.getLogger(__name__)

MAX_BODY = "JOBQ_API_MAX_BODY"
DEFAULT_MAX_BODY = 64 * 1024 * 1024
API_KEY_HEADER = "x-api-key"
OPENAPI_PATH = "/api/v1/openapi.json"


class AsciiJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: text that is not valid Unicode (a lone surrogate in an unknown
    field's name, quoted back in an error) can still be sent."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


def error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    """Every error answer has the same shape: ``{"error": {"code", "message", ...}}``."""
    return AsciiJSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


def _unauthorized() -> JSONResponse:
    return error(401, "ERR_UNAUTHORIZED", f"missing or unknown {API_KEY_HEADER} header")


class IntakeApp:
    """The routes, bound to one :class:`Intake`, its two kinds of keys and the body limit.

    Ingest keys (``JOBQ_API_KEYS``) sit in browsers: they can create reports and nothing else.
    Reading a report, which shows job results and failures, needs a read key
    (``JOBQ_API_READ_KEYS``).
    """

    def __init__(self, intake: Intake, api_keys: ApiKeys, read_keys: ApiKeys, max_body: int) -> None:
        self.intake = intake
        self.api_keys = api_keys
        self.read_keys = read_keys
        self.max_body = max_body
        self.limiter = RequestLimiter(intake.manager.redis, intake.manager.settings.prefix)

    async def _admit(self, project_id: str) -> Admission | None:
        """The project's ``rateLimit`` verdict for one more report, ``None`` when it has no limit."""
        project = self.intake.projects.get(project_id)
        if project is None or project.rate_limit is None:
            return None
        return await run_in_threadpool(self.limiter.check, project_id, project.rate_limit)

    def _scope(self, request: Request, keys: ApiKeys, other: ApiKeys, other_setting: str) -> str | Response:
        """The key's project, or the refusal: 401 for an unknown key, 403 for a key of the other kind."""
        presented = request.headers.get(API_KEY_HEADER)
        project_id = keys.project_for(presented)
        if project_id is not None:
            return project_id
        if other.project_for(presented) is not None:
            return error(403, "ERR_FORBIDDEN", f"this key cannot do that; it is a {other_setting} key")
        return _unauthorized()

    async def create_report(self, request: Request) -> Response:
        project_id = self._scope(request, self.api_keys, self.read_keys, READ_KEYS)
        if not isinstance(project_id, str):
            return project_id
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return error(415, "ERR_UNSUPPORTED_MEDIA_TYPE", "send the report as application/json")
        verdict = await self._admit(project_id)
        limit_headers = verdict.headers() if verdict is not None else {}
        if verdict is not None and not verdict.allowed:
            resp = error(429, "ERR_RATE_LIMITED", f"over this project's limit of {verdict.limit} reports in "
                         f"{self.intake.projects[project_id].rate_limit.per_seconds:g} s; retry later")  # type: ignore[union-attr]
            resp.headers.update(limit_headers)
            return resp
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
        return AsciiJSONResponse(report, status_code=201,
                                 headers={"Location": f"/api/v1/reports/{report['id']}", **limit_headers})

    def _create(self, project_id: str, raw: bytearray) -> dict[str, Any]:
        size = len(raw)
        try:
            return self.intake.create(project_id, decode(raw))
        finally:
            if size >= GIVE_BACK_ABOVE:
                give_back_memory()

    async def get_report(self, request: Request) -> Response:
        project_id = self._scope(request, self.read_keys, self.api_keys, API_KEYS)
        if not isinstance(project_id, str):
            return project_id
        report_id = request.path_params["report_id"]
        try:
            report = await run_in_threadpool(self.intake.show, project_id, report_id)
        except StoreUnavailable as exc:
            return _unavailable("ERR_STORE_UNAVAILABLE", str(exc))
        if report is None:
            return error(404, "ERR_NOT_FOUND", "no such report in this project")
        return AsciiJSONResponse(report)

    async def delete_report(self, request: Request) -> Response:
        """Erase the report and everything it produced (a read key: erasure is no SDK's business)."""
        project_id = self._scope(request, self.read_keys, self.api_keys, API_KEYS)
        if not isinstance(project_id, str):
            return project_id
        try:
            outcome = await run_in_threadpool(self.intake.erase, project_id, request.path_params["report_id"])
        except StoreUnavailable as exc:
            return _unavailable("ERR_STORE_UNAVAILABLE", str(exc))
        except ErasureIncomplete as exc:
            return _unavailable("ERR_ERASURE_INCOMPLETE", f"{exc}; the report is kept, marked: send the DELETE "
                                "again")
        if outcome is None:
            return error(404, "ERR_NOT_FOUND", "no such report in this project")
        return AsciiJSONResponse(outcome)

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

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document(self.max_body))


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
    api_keys: ApiKeys | None = None, read_keys: ApiKeys | None = None,
    projects: Mapping[str, Project] | None = None,
    specs: list[QueueSpec] | None = None, max_body: int | None = None, env: Mapping[str, str] | None = None,
) -> Starlette:
    """Build the ASGI app. Anything not given is read from the environment (``env`` or ``os.environ``).

    :param settings: jobq settings (Redis URL, prefix...), default ``Settings.from_env()``.
    :param store: the report store, default ``ReportStore.from_env()`` (closed with the app).
    :param api_keys: ingest keys, default parsed from ``JOBQ_API_KEYS``; the app refuses to start
        without any.
    :param read_keys: keys that may read reports, default parsed from ``JOBQ_API_READ_KEYS`` (none:
        no one can read reports over HTTP).
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
    if read_keys is None:
        read_keys = ApiKeys.parse(e.get(READ_KEYS), READ_KEYS)
    if api_keys.overlaps(read_keys):
        raise ConfigError(f"a key is in both {API_KEYS} and {READ_KEYS}: read keys must not ship in browsers")
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
    routes = IntakeApp(Intake(store, manager, projects), api_keys, read_keys, max_body)

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
            Route("/api/v1/reports/{report_id}", routes.delete_report, methods=["DELETE"]),
            Route(OPENAPI_PATH, routes.openapi, methods=["GET"]),
            Route("/health", routes.health, methods=["GET"]),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        # The trace covers the whole exchange, the drain included.
        middleware=[Middleware(TraceRequests), Middleware(DrainBody, limit=max_body)],
    )
    # Starlette would answer /api/v1/reports/ with a redirect to an absolute URL built from the
    # Host header, which the client chooses: no redirects at all.
    app.router.redirect_slashes = False
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
