"""The dashboard's Starlette application: pages, admin actions, login, security headers.

:func:`create_app` builds it; mount it anywhere (``Mount("/jobq", app=create_app())``) or run it with
``jobq dashboard``. Pages are server-rendered with autoescaped templates and read with JavaScript off;
a small script only refreshes the live parts (within 2 s) while the tab is visible.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import weakref
from importlib.resources import files
from typing import Any
from urllib.parse import urlencode

import jinja2
from jobq.config import Settings
from jobq.errors import InvalidOptions, JobNotFound
from jobq.keys import JOB_ID
from jobq.plugins import PluginHost
from jobq.queue import AsyncQueueManager
from jobq.spec import QUEUE_NAME
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from . import data
from .auth import (
    LOGIN_LIMIT,
    LOGIN_WINDOW_S,
    SECRET_ENV,
    User,
    csrf_ok,
    new_csrf_token,
    throttle_key,
    users_from_env,
    verify_password,
)

log = logging.getLogger(__name__)
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"referrer-policy", b"no-referrer"),
           (b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
           (b"cache-control", b"no-store")]
MAX_BODY = 64 * 1024
ANONYMOUS = User("anonymous", "admin", "")
RETRY_ALL_LIMIT = 1000


class SecurityHeaders:
    """Adds CSP and friends to every response and refuses request bodies over ``MAX_BODY``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", []):
            if name == b"content-length" and (not value.isdigit() or int(value) > MAX_BODY):
                await Response("request body too large", 413, headers=dict((k.decode(), v.decode())
                                                                           for k, v in HEADERS))(scope, receive, send)
                return
        seen = 0

        async def bounded() -> Any:  # a chunked body has no Content-Length: count what arrives
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                raise HTTPException(413, "request body too large")
            return message

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                present = {k.lower() for k, _ in message["headers"]}
                message["headers"] += [(k, v) for k, v in HEADERS if k not in present]
            await send(message)

        await self.app(scope, bounded, with_headers)


class Dashboard:
    """State shared by the routes: settings, users, the Redis manager (one per event loop), templates."""

    def __init__(self, settings: Settings, users: dict[str, User], auth: bool, host: PluginHost | None,
                 session_seconds: float = 8 * 3600) -> None:
        self.settings = settings
        self.session_seconds = session_seconds
        self.users = users
        self.auth = auth
        self._host = host
        self._managers: weakref.WeakKeyDictionary[Any, AsyncQueueManager] = weakref.WeakKeyDictionary()
        env = jinja2.Environment(loader=jinja2.PackageLoader("jobq_dashboard", "templates"), autoescape=True,
                                 undefined=jinja2.StrictUndefined)
        self.templates = Jinja2Templates(env=env)

    @property
    def manager(self) -> AsyncQueueManager:
        loop = asyncio.get_running_loop()  # a Redis connection belongs to one event loop
        m = self._managers.get(loop)
        if m is None:
            m = self._managers[loop] = AsyncQueueManager(self.settings, strict=False)
        return m

    @property
    def host(self) -> PluginHost:
        if self._host is None:
            self._host = PluginHost().load()
        return self._host


def _dash(request: Request) -> Dashboard:
    return request.app.state.dashboard


def url(request: Request, name: str, query: dict[str, Any] | None = None, **params: Any) -> str:
    path = request.scope.get("root_path", "") + request.app.url_path_for(name, **params)
    q = {k: v for k, v in (query or {}).items() if v not in (None, "")}
    return path + ("?" + urlencode(q) if q else "")


def _user(request: Request) -> User | None:
    d = _dash(request)
    if not d.auth:
        return ANONYMOUS
    name, since = request.session.get("user"), request.session.get("t")
    if not isinstance(name, str) or not isinstance(since, int):
        return None
    if time.time() - since > d.session_seconds:  # the cookie slides with use; a sign-in does not
        request.session.clear()
        return None
    return d.users.get(name)


def _csrf(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = request.session["csrf"] = new_csrf_token()
    return token


def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    d = _dash(request)
    ctx = {"request": request, "user": _user(request), "insecure": not d.auth, "csrf": _csrf(request),
           "flash": request.session.pop("flash", None), "url": lambda name, query=None, **p: url(
               request, name, query, **p), "states": data.STATES, "inf": float("inf")}
    ctx.update(context)
    return d.templates.TemplateResponse(request, template, ctx, status_code=status)


def _login_redirect(request: Request) -> Response:
    root, path = request.scope.get("root_path", ""), request.url.path
    if not path.startswith(root + "/"):  # servers differ on whether the path carries root_path
        path = root + path
    nxt = path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(url(request, "login", {"next": nxt}), 303)


def _queue(request: Request) -> str:
    q = request.path_params["queue"]
    if not QUEUE_NAME.fullmatch(q):
        raise HTTPException(404, "no such queue")
    return q


def _job_id(request: Request) -> str:
    j = request.path_params["job_id"]
    if not JOB_ID.fullmatch(j):
        raise HTTPException(404, "no such job")
    return j


def page(fn: Any) -> Any:
    """A page for any signed-in user."""

    async def endpoint(request: Request) -> Response:
        if _user(request) is None:
            return _login_redirect(request)
        return await fn(request)

    endpoint.__name__ = fn.__name__
    return endpoint


def action(fn: Any) -> Any:
    """An admin action: POST, CSRF token checked, written to the audit list, answers with the new state."""

    async def endpoint(request: Request) -> Response:
        user = _user(request)
        if user is None:
            return Response("sign in first", 401)
        form = await request.form(max_files=0, max_fields=16)
        if not csrf_ok(request.session, form.get("csrf")):
            return Response("missing or wrong CSRF token: reload the page and try again", 403)
        if not user.admin:
            return Response("this action needs the admin role", 403)
        queue = _queue(request)
        job_id = request.path_params.get("job_id", "")
        if job_id:
            _job_id(request)
        try:
            message, state, target = await fn(request, queue, job_id, form)
        except (InvalidOptions, JobNotFound) as exc:
            message, state, target = str(exc), None, None
        d = _dash(request)
        await data.audit(d.manager, user.name, fn.__name__, queue, job_id, message,
                         request.client.host if request.client else "")
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"message": message, "state": state})
        request.session["flash"] = message
        back = target or (url(request, "job", queue=queue, job_id=job_id) if job_id else
                          url(request, "queue", queue=queue))
        return RedirectResponse(back, 303)

    endpoint.__name__ = fn.__name__
    return endpoint


# -- pages ----------------------------------------------------------------------------------------
@page
async def overview(request: Request) -> Response:
    return render(request, "overview.html", **await data.overview(_dash(request).manager))


@page
async def queue(request: Request) -> Response:
    q = _queue(request)
    m = _dash(request).manager
    state = request.query_params.get("state", "waiting")
    if state not in data.STATES:
        raise HTTPException(400, f"state must be one of {', '.join(data.STATES)}")
    try:
        offset = max(0, min(int(request.query_params.get("offset", "0")), 10**9))
    except ValueError:
        raise HTTPException(400, "offset must be a whole number") from None
    filters = {f: request.query_params.get(f, "")[:128] for f in ("id", "name", "code")}
    counts = dict(await m.get_queue_metrics(q))
    counts["blocked"] = await m.redis.zcard(m.keys(q).blocked)
    listing = await data.job_list(m, q, state, offset, filters["id"], filters["name"], filters["code"])
    paused = await m.redis.hget(m.keys(q).meta, "paused") == b"1"
    schedules = await data.schedules(m, q)
    flow, groups = await m.get_flow_control(q), await m.get_group_stats(q, 10)  # bounded: the top 10 groups
    return render(request, "queue.html", queue=q, state=state, counts=counts, filters=filters, offset=offset,
                  paused=paused, page_size=data.PAGE_SIZE, scan_limit=data.SCAN_LIMIT, schedules=schedules,
                  flow=flow, groups=groups,
                  **listing)


@page
async def job(request: Request) -> Response:
    q, j = _queue(request), _job_id(request)
    detail = await data.job_detail(_dash(request).manager, q, j)
    if detail is None:
        return render(request, "missing.html", 404, queue=q, job_id=j)
    return render(request, "job.html", queue=q, **detail)


@page
async def workers(request: Request) -> Response:
    return render(request, "workers.html", workers=await data.workers(_dash(request).manager))


@page
async def plugins(request: Request) -> Response:
    host = await asyncio.to_thread(lambda: _dash(request).host)
    rows = sorted(host.plugins.values(), key=lambda p: p.name)
    return render(request, "plugins.html", plugins=rows)


@page
async def audit(request: Request) -> Response:
    return render(request, "audit.html", entries=await data.audit_entries(_dash(request).manager))


@page
async def confirm(request: Request) -> Response:
    q = _queue(request)
    what = request.path_params["what"]
    if what not in ("retry-failed", "purge-failed", "purge-completed"):
        raise HTTPException(404, "no such action")
    counts = await _dash(request).manager.get_queue_metrics(q)
    n = counts["failed"] if what != "purge-completed" else counts["completed"]
    return render(request, "confirm.html", queue=q, what=what, n=n, limit=RETRY_ALL_LIMIT)


# -- actions (each returns message, new state, where to go next) ----------------------------------
@action
async def retry(request: Request, queue: str, job_id: str, form: Any) -> tuple[str, Any, Any]:
    m = _dash(request).manager
    ok = await m.retry_job(queue, job_id)
    state = await m.get_job_status(queue, job_id)
    return (f"Retried job {job_id}: now {state}" if ok else f"Job {job_id} is {state}, not failed"), state, None


@action
async def remove(request: Request, queue: str, job_id: str, form: Any) -> tuple[str, Any, Any]:
    ok = await _dash(request).manager.remove_job(queue, job_id)
    return (f"Removed job {job_id}" if ok else f"No job {job_id}"), "removed", url(request, "queue", queue=queue)


@action
async def promote(request: Request, queue: str, job_id: str, form: Any) -> tuple[str, Any, Any]:
    m = _dash(request).manager
    ok = await m.promote_job(queue, job_id)
    state = await m.get_job_status(queue, job_id)
    return (f"Promoted job {job_id}: now {state}" if ok else f"Job {job_id} is {state}, not delayed"), state, None


@action
async def cancel(request: Request, queue: str, job_id: str, form: Any) -> tuple[str, Any, Any]:
    m = _dash(request).manager
    user = _user(request)
    was = await m.cancel_job(queue, job_id, f"cancelled by {user.name if user else '?'} in the dashboard")
    state = await m.get_job_status(queue, job_id)
    return f"Cancelled job {job_id} (was {was}): now {state}", state, None


@action
async def pause(request: Request, queue: str, job_id: str, form: Any) -> tuple[str, Any, Any]:
    await _dash(request).manager.pause_queue(queue)
    return f"Paused queue {queue}", "paused", None


@action
async def resume(request: Request, queue: str, job_id: str, form: Any) -> tuple[str, Any, Any]:
    await _dash(request).manager.resume_queue(queue)
    return f"Resumed queue {queue}", "running", None


@action
async def retry_failed(request: Request, queue: str, job_id: str, form: Any) -> tuple[str, Any, Any]:
    n = await _dash(request).manager.retry_failed(queue, RETRY_ALL_LIMIT)
    return f"Retried {n} failed job(s) of {queue}", "retried", None


@action
async def purge(request: Request, queue: str, job_id: str, form: Any) -> tuple[str, Any, Any]:
    state = form.get("state")
    if state not in ("failed", "completed"):
        raise InvalidOptions("state must be failed or completed")
    if form.get("confirm") != queue:
        back = url(request, "confirm", queue=queue, what=f"purge-{state}")
        return f"Not purged: type the queue name {queue!r} to confirm", None, back
    n = await _dash(request).manager.purge(queue, state)
    return f"Purged {n} {state} job(s) of {queue}", "purged", None


# -- login ----------------------------------------------------------------------------------------
def _next(request: Request, raw: Any) -> str:
    """Only a path inside the dashboard: never an open redirect."""
    home = url(request, "overview")
    if not isinstance(raw, str) or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return home
    return raw


async def login(request: Request) -> Response:
    d = _dash(request)
    if not d.auth:
        return RedirectResponse(url(request, "overview"), 303)
    if request.method == "GET":
        return render(request, "login.html", next=_next(request, request.query_params.get("next")), error=None)
    form = await request.form(max_files=0, max_fields=8)
    nxt = _next(request, form.get("next"))
    if not csrf_ok(request.session, form.get("csrf")):
        return render(request, "login.html", 403, next=nxt, error="The form expired: please try again.")
    name, password = form.get("username"), form.get("password")
    if not isinstance(name, str) or not isinstance(password, str) or not name or len(name) > 64:
        return render(request, "login.html", 400, next=nxt, error="Enter a user name and a password.")
    address = request.client.host if request.client else ""
    key = throttle_key(d.settings.prefix, name, address)
    r = d.manager.redis
    pipe = r.pipeline(transaction=False)  # count the attempt before checking it: parallel guesses count too
    pipe.incr(key)
    pipe.expire(key, LOGIN_WINDOW_S, nx=True)
    attempts, _ = await pipe.execute()
    if attempts > LOGIN_LIMIT:
        ttl = max(await r.ttl(key), 1)
        resp = render(request, "login.html", 429, next=nxt,
                      error=f"Too many failed sign-ins for this user from this address; try again in {ttl} s.")
        resp.headers["retry-after"] = str(ttl)
        return resp
    user = d.users.get(name)
    ok = await asyncio.to_thread(verify_password, password, user.hash if user else None)
    if not ok or user is None:
        # the typed name is not logged: people type passwords into it
        log.warning("dashboard: failed sign-in from %s (%s user name)", address, "a known" if user else "an unknown")
        return render(request, "login.html", 401, next=nxt, error="Wrong user name or password.")
    await r.delete(key)
    request.session.clear()
    request.session.update({"user": user.name, "csrf": new_csrf_token(), "t": int(time.time())})
    return RedirectResponse(nxt, 303)


async def logout(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=4)
    if not csrf_ok(request.session, form.get("csrf")):
        return Response("missing or wrong CSRF token", 403)
    request.session.clear()
    return RedirectResponse(url(request, "login"), 303)


async def not_found(request: Request, exc: Exception) -> Response:
    code = getattr(exc, "status_code", 500)
    detail = getattr(exc, "detail", "error")
    return Response(f"{code}: {detail}", code, media_type="text/plain")


def create_app(settings: Settings | None = None, *, users: dict[str, User] | None = None,
               insecure_no_auth: bool = False, secret_key: str | None = None, session_hours: float = 8.0,
               https_only: bool = False, host: PluginHost | None = None) -> Starlette:
    """The dashboard as an ASGI app.

    :param settings: Redis and key prefix; defaults to :meth:`Settings.from_env`.
    :param users: who may sign in; defaults to ``JOBQ_DASHBOARD_USERS``.
    :param insecure_no_auth: no sign-in, everyone is admin (``jobq dashboard`` allows it on loopback only).
    :param secret_key: signs session cookies; ``JOBQ_DASHBOARD_SECRET`` or a random one per process.
    :param session_hours: how long a sign-in lasts.
    :param https_only: mark the session cookie ``Secure`` (set it behind TLS).
    :param host: loaded plugins for the Plugins page; loaded on first view otherwise.
    """
    import os

    settings = settings or Settings.from_env()
    users = users_from_env() if users is None else users
    if not users and not insecure_no_auth:
        log.warning("dashboard: no users in JOBQ_DASHBOARD_USERS: nobody can sign in")
    key = secret_key or os.environ.get(SECRET_ENV) or secrets.token_urlsafe(32)
    routes = [
        Route("/", overview, name="overview"),
        Route("/login", login, methods=["GET", "POST"], name="login"),
        Route("/logout", logout, methods=["POST"], name="logout"),
        Route("/workers", workers, name="workers"),
        Route("/plugins", plugins, name="plugins"),
        Route("/audit", audit, name="audit"),
        Route("/queues/{queue}", queue, name="queue"),
        Route("/queues/{queue}/confirm/{what}", confirm, name="confirm"),
        Route("/queues/{queue}/jobs/{job_id}", job, name="job"),
        Route("/queues/{queue}/pause", pause, methods=["POST"], name="pause"),
        Route("/queues/{queue}/resume", resume, methods=["POST"], name="resume"),
        Route("/queues/{queue}/retry-failed", retry_failed, methods=["POST"], name="retry_failed"),
        Route("/queues/{queue}/purge", purge, methods=["POST"], name="purge"),
        Route("/queues/{queue}/jobs/{job_id}/retry", retry, methods=["POST"], name="retry"),
        Route("/queues/{queue}/jobs/{job_id}/remove", remove, methods=["POST"], name="remove"),
        Route("/queues/{queue}/jobs/{job_id}/promote", promote, methods=["POST"], name="promote"),
        Route("/queues/{queue}/jobs/{job_id}/cancel", cancel, methods=["POST"], name="cancel"),
        Mount("/static", StaticFiles(directory=str(files("jobq_dashboard") / "static")), name="static"),
    ]
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(SessionMiddleware, secret_key=key, session_cookie="jobq_dashboard",
                   max_age=int(session_hours * 3600), same_site="lax", https_only=https_only),
    ]
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={HTTPException: not_found})
    app.state.dashboard = Dashboard(settings, users, not insecure_no_auth, host, session_hours * 3600)
    return app
