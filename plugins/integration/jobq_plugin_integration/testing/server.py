"""A real HTTP server on 127.0.0.1 that plays a vendor API, for tests (yours and ours).

Subclasses add routes and vendor-shaped answers; this base records every exchange and injects
faults: an answer of your choice, a request processed whose response never arrives (the
"request sent, response lost" case), a slow response, rate limits.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs


@attrs.define
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    json: Any = None
    connection: int = 0

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@attrs.define
class Response:
    status: int = 200
    json: Any = None
    text: str | None = None
    headers: dict[str, str] = attrs.field(factory=dict)

    def encode(self) -> tuple[bytes, str]:
        if self.json is not None:
            return json.dumps(self.json).encode(), "application/json; charset=utf-8"
        return (self.text or "").encode(), "text/plain; charset=utf-8"


@attrs.define
class Exchange:
    request: Request
    response: Response | None  # None when the response was withheld (connection dropped)
    operation: str = ""  # the route's name, e.g. "createIssue"
    injected: bool = False  # the answer came from a fault the test injected, not the vendor logic


@attrs.define
class Fault:
    """What to do instead of (or after) the normal processing of matching requests.

    ``mode``: ``respond`` answers ``response`` without processing; ``drop`` processes the request
    and closes the connection without answering; ``delay`` processes, then waits ``seconds``.
    """

    mode: str
    operation: str | None = None
    times: int = 1
    response: Response | None = None
    seconds: float = 0.0


Handler = Callable[[Request, "re.Match[str]"], Response]


class FakeVendorServer:
    """Start with ``with FakeX() as server:``; ``server.url`` is the base URL."""

    def __init__(self, *, host: str = "127.0.0.1") -> None:
        self.host = host
        self.routes: list[tuple[str, re.Pattern[str], str, Handler]] = []
        self.exchanges: list[Exchange] = []
        self.faults: list[Fault] = []
        self.connections = 0
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- setup ---------------------------------------------------------------------------------
    def route(self, method: str, pattern: str, operation: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(pattern), operation, handler))

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    def start(self) -> FakeVendorServer:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in separate writes; with Nagle on, the client's delayed ACK
            # would add 40 ms to every response
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server.connections += 1
                    self.connection_number = server.connections

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                server._serve(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self._httpd = ThreadingHTTPServer((self.host, 0), _Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FakeVendorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults ---------------------------------------------------------------------------------
    def fail_next(self, status: int, *, json: Any = None, text: str | None = None,
                  headers: dict[str, str] | None = None, operation: str | None = None, times: int = 1) -> None:
        """Answer the next ``times`` matching requests with this response, unprocessed."""
        self._add(Fault("respond", operation, times, Response(status, json, text, dict(headers or {}))))

    def lose_response_next(self, operation: str | None = None, times: int = 1) -> None:
        """Process the next matching request, then close the connection without answering."""
        self._add(Fault("drop", operation, times))

    def delay_response_next(self, seconds: float, operation: str | None = None, times: int = 1) -> None:
        """Process the next matching request, then wait ``seconds`` before answering."""
        self._add(Fault("delay", operation, times, seconds=seconds))

    def _add(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def _take_fault(self, operation: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.operation in (None, operation):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    # -- queries for tests ----------------------------------------------------------------------
    def calls(self, operation: str) -> list[Exchange]:
        with self._lock:
            return [e for e in self.exchanges if e.operation == operation]

    # -- vendor hooks ---------------------------------------------------------------------------
    def authenticate(self, request: Request) -> Response | None:
        """A vendor-shaped refusal when the request's credentials are wrong, else ``None``."""
        return None

    def not_found(self, request: Request) -> Response:
        return Response(404, json={"message": "Not Found"})

    # -- serving --------------------------------------------------------------------------------
    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        split = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        parsed: Any = None
        if body and "json" in (h.headers.get("Content-Type") or ""):
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        request = Request(method=h.command, path=split.path, query=parse_qs(split.query, keep_blank_values=True),
                          headers={k.lower(): v for k, v in h.headers.items()}, body=body, json=parsed,
                          connection=getattr(h, "connection_number", 0))
        operation, handler, match = "", None, None
        for method, pattern, op, fn in self.routes:
            m = pattern.fullmatch(split.path)
            if m and method == h.command:
                operation, handler, match = op, fn, m
                break
        fault = self._take_fault(operation) if operation else None
        if fault is not None and fault.mode == "respond":
            response: Response | None = fault.response
        elif handler is None:
            response = self.not_found(request)
        else:
            response = self.authenticate(request) or handler(request, match)  # type: ignore[arg-type]
        if fault is not None and fault.mode == "drop":
            with self._lock:
                self.exchanges.append(Exchange(request, None, operation))
            h.close_connection = True
            return
        if fault is not None and fault.mode == "delay":
            deadline = time.monotonic() + fault.seconds
            while time.monotonic() < deadline and not self._stopping.is_set():
                self._stopping.wait(min(0.05, max(0.0, deadline - time.monotonic())))
        assert response is not None
        with self._lock:
            self.exchanges.append(Exchange(request, response, operation,
                                           injected=fault is not None and fault.mode == "respond"))
        payload, content_type = response.encode()
        try:
            h.send_response(response.status)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(payload)))
            for k, v in response.headers.items():
                h.send_header(k, v)
            h.end_headers()
            if payload:
                h.wfile.write(payload)
        except OSError:
            h.close_connection = True
