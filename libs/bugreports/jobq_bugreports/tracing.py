"""Traces for the intake API: each request continues the caller's W3C ``traceparent`` in a SERVER
span, so the report's jobs (enqueued inside it) and their handlers join the browser's trace.

A pure ASGI middleware: with tracing off (``jobq.tracing.TRACER is None``) a request costs one test.
"""

from __future__ import annotations

import re
from typing import Any

from jobq import tracing

_REPORT = re.compile(r"/api/v1/reports/[^/]+")


def _route(path: str) -> str:
    """A low-cardinality route name: report ids are not part of it."""
    return "/api/v1/reports/{report_id}" if _REPORT.fullmatch(path) else path


class TraceRequests:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or tracing.TRACER is None:
            await self.app(scope, receive, send)
            return
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind, Status, StatusCode

        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                   if k in (b"traceparent", b"tracestate")}
        route = _route(scope["path"])
        status: list[int] = []

        async def send_traced(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        with tracing.TRACER.start_as_current_span(
            f"{scope['method']} {route}", context=propagate.extract(carrier), kind=SpanKind.SERVER,
            attributes={"http.request.method": scope["method"], "http.route": route, "url.path": route},
        ) as span:
            await self.app(scope, receive, send_traced)
            if status:
                span.set_attribute("http.response.status_code", status[0])
                if status[0] >= 500:
                    span.set_status(Status(StatusCode.ERROR, str(status[0])))
