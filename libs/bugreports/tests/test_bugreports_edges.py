"""Hostile clients against the intake API over real sockets (issue 14, points 2, 3, 5, 7, 9 and 16)."""

from __future__ import annotations

import base64
import json
import logging
import os
import resource
import select
import socket
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from jobq import ConfigError
from jobq.waiting import wait_until
from jobq_bugreports.api import create_app
from jobq_bugreports.intake import fallback_specs
from jobq_bugreports.projects import ApiKeys
from jobq_bugreports.server import RepeatFilter, ServerLimits

pytestmark = pytest.mark.timeout(60)

CORPORA = Path("/work/shared/corpora")
INGEST = "edge-ingest-0123456789abcdef"
READ = "edge-read-0123456789abcdef"
OTHER_READ = "edge-other-0123456789abcdef"
POST_HEAD = ("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\n"
             "Content-Length: {length}\r\n\r\n")


@pytest.fixture
def api(served, jobq_settings, sqlite_store_factory):
    """``api(limits=..., max_body=...)``: a served app; yields an httpx client (its base URL has the port)."""

    @contextmanager
    def start(limits: ServerLimits | None = None, **kw: Any) -> Iterator[httpx.Client]:
        app = create_app(settings=jobq_settings, store=sqlite_store_factory(), projects={}, specs=fallback_specs(),
                         api_keys=ApiKeys({"proj-1": INGEST}),
                         read_keys=ApiKeys([("proj-1", READ), ("proj-2", OTHER_READ)]), **kw)
        with served(app, limits) as client:
            yield client

    return start


@pytest.fixture
def sqlite_store_factory(tmp_path: Path):
    from jobq_bugreports.store import ReportStore

    stores: list[ReportStore] = []

    def make() -> ReportStore:
        stores.append(ReportStore(f"sqlite:///{tmp_path / f'edges{len(stores)}.db'}"))
        return stores[-1]

    yield make
    for s in stores:
        s.close()


def connect(client: httpx.Client) -> socket.socket:
    return socket.create_connection(("127.0.0.1", client.base_url.port), timeout=10)


def read_to_close(sock: socket.socket, timeout: float, trickle: bytes = b"") -> bytes | None:
    """Everything the server sends until it closes (a reset counts as closed), or ``None`` if it is
    still open after ``timeout`` s. ``trickle`` is sent every 0.1 s meanwhile (a slow client)."""
    received = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if trickle:
            try:
                sock.sendall(trickle)
            except OSError:
                pass
        readable, _, _ = select.select([sock], [], [], 0.1)
        if readable:
            try:
                chunk = sock.recv(65536)
            except OSError:
                return received
            if not chunk:
                return received
            received += chunk
    return None


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def body_of(raw: bytes) -> Any:
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])


# -- point 2: deadlines, the connection cap, the log --------------------------------------------

def test_idle_slow_header_and_slow_body_connections_are_closed(api) -> None:
    limits = ServerLimits(header_timeout=0.5, body_timeout=1.0, idle_timeout=0.5, max_connections=50)
    with api(limits) as client:
        idle = connect(client)
        slow_header = connect(client)
        slow_header.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        slow_body = connect(client)
        slow_body.sendall(POST_HEAD.format(path="/api/v1/reports", key=INGEST, length=10_000).encode() + b"{")
        t0 = time.monotonic()
        got_idle = read_to_close(idle, 5)
        got_header = read_to_close(slow_header, 5, trickle=b"X")
        got_body = read_to_close(slow_body, 5, trickle=b" ")
        took = time.monotonic() - t0
        assert got_idle == b""  # closed without a word: it never started a request
        assert got_header is not None and status_of(got_header) == 408
        assert body_of(got_header)["error"]["code"] == "ERR_REQUEST_TIMEOUT"
        assert got_body is not None  # closed although bytes kept coming
        assert took < 4
        assert client.get("/health").status_code == 200
        for s in (idle, slow_header, slow_body):
            s.close()


LEGIT = (("GET", "/health", None, 200), ("POST", "/api/v1/reports", INGEST, 201),
         ("POST", "/api/v1/reports", None, 401))


def legit_request(base: str, i: int) -> tuple[int, int]:
    """The ``i``-th of a cycle of legitimate requests, each on a connection of its own:
    (the status it got, the status it should get)."""
    method, path, key, expected = LEGIT[i % len(LEGIT)]
    r = httpx.request(method, base.rstrip("/") + path, headers={"X-API-Key": key} if key else None,
                      json={"title": "legit"} if method == "POST" else None, timeout=5)
    return r.status_code, expected


def busy_with_a_body(client: httpx.Client) -> socket.socket:
    """A connection in the middle of a request: headers sent, ``100 Continue`` received (so the
    server has them), the body not sent yet."""
    sock = connect(client)
    head = POST_HEAD.format(path="/api/v1/reports", key=INGEST, length=len(b'{"title":"late"}'))
    sock.sendall(head.replace("\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n").encode())
    assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    return sock


def test_idle_connections_make_room_for_legitimate_requests(api) -> None:
    """Idle sockets filling the cap once made about one legitimate request in three a 503; now each
    newcomer closes the connection idle longest, even while the attacker keeps reconnecting."""
    limits = ServerLimits(header_timeout=30, idle_timeout=30, max_connections=4)
    with api(limits) as client:
        idle = [connect(client) for _ in range(4)]
        answers = []
        for i in range(9):
            idle += [connect(client), connect(client)]  # the attacker reconnects
            answers.append(legit_request(str(client.base_url), i))
        assert [got for got, _ in answers] == [expected for _, expected in answers]
        # The pushed-out ones were closed without a word (no 503), the oldest first.
        assert read_to_close(idle[0], 5) == b""
        assert read_to_close(idle[-1], 0.2) is None  # the newest still waits for its request
        for s in idle:
            s.close()


def test_a_connection_in_the_middle_of_a_request_is_never_pushed_out(api) -> None:
    limits = ServerLimits(header_timeout=30, body_timeout=30, max_connections=3)
    with api(limits) as client:
        body = busy_with_a_body(client)
        headers = connect(client)
        headers.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # no blank line yet
        # Answered on a connection opened after ``headers`` sent its bytes: the server has read them.
        assert legit_request(str(client.base_url), 0) == (200, 200)
        flood = [connect(client) for _ in range(20)]
        assert legit_request(str(client.base_url), 0) == (200, 200)  # every flooder has been seen
        headers.sendall(b"\r\n")
        assert status_of(headers.recv(65536)) == 200
        body.sendall(b'{"title":"late"}')
        assert status_of(body.recv(65536)) == 201
        assert read_to_close(flood[0], 5) == b""  # pushed out instead
        for s in [body, headers, *flood]:
            s.close()


def one_byte(client: httpx.Client) -> socket.socket:
    """A slowloris socket: the first byte of a request, then nothing."""
    sock = connect(client)
    sock.sendall(b"G")
    return sock


def grace_passed(since: float, grace: float) -> None:
    """Wait until the monotonic clock (the server's loop clock too) is ``grace`` s past ``since``."""
    wait_until(lambda: time.monotonic() > since + grace, timeout=10, interval=0.02)


def test_stalled_headers_make_room_for_legitimate_requests(api) -> None:
    """Sockets that each sent one byte of a request once held the cap until the header deadline, and
    every legitimate request meanwhile was a 503; past the stall grace, a newcomer pushes out the one
    stalled longest, even while the attacker keeps reconnecting."""
    limits = ServerLimits(header_timeout=30, body_timeout=30, stall_grace=0.2, max_connections=7)
    with api(limits) as client:
        stalled = [one_byte(client) for _ in range(6)]
        # Its 100 Continue comes after the server has read the one-byte sockets' bytes; stalled since.
        body = busy_with_a_body(client)
        grace_passed(time.monotonic(), limits.stall_grace)
        answers, fresh = [], []
        for i in range(3):
            fresh.append(one_byte(client))  # the attacker reconnects
            answers.append(legit_request(str(client.base_url), i))
        assert [got for got, _ in answers] == [expected for _, expected in answers]
        # The oldest, pushed out first, was told why; the request in its body phase carries on.
        pushed_out = read_to_close(stalled[0], 5)
        assert pushed_out is not None and status_of(pushed_out) == 408
        body.sendall(b'{"title":"late"}')
        assert status_of(body.recv(65536)) == 201
        for s in [*stalled, *fresh, body]:
            s.close()


def test_headers_within_the_grace_and_a_body_are_never_pushed_out(api) -> None:
    limits = ServerLimits(header_timeout=30, body_timeout=30, stall_grace=1.0, max_connections=3)
    with api(limits) as client:
        stale = one_byte(client)
        headers = connect(client)
        headers.sendall(b"GET /health HTTP/1.1\r\n")
        body = busy_with_a_body(client)  # its 100 Continue: the server has read the two above
        grace_passed(time.monotonic(), limits.stall_grace)  # all three stalled past the grace now
        headers.sendall(b"Host: x\r\n")  # within its grace again
        # A newcomer pushes ``stale`` out; its 100 Continue comes after the server has read that byte.
        newcomer = busy_with_a_body(client)
        extra = connect(client)
        extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = read_to_close(extra, 5)
        # Nothing else to push out: ``headers`` within its grace, ``body`` past its headers (its
        # bytes stalled longer than the grace, but the body deadline is the one that covers it).
        assert answer is not None and status_of(answer) == 503
        headers.sendall(b"\r\n")
        assert status_of(headers.recv(65536)) == 200
        for sock in (body, newcomer):
            sock.sendall(b'{"title":"late"}')
            assert status_of(sock.recv(65536)) == 201
        pushed_out = read_to_close(stale, 5)
        assert pushed_out is not None and status_of(pushed_out) == 408
        for s in (stale, headers, body, newcomer, extra):
            s.close()


def test_connections_over_the_cap_get_a_clean_503_when_none_is_idle(api) -> None:
    limits = ServerLimits(header_timeout=10, max_connections=3)
    with api(limits) as client:
        held = [busy_with_a_body(client) for _ in range(3)]
        extra = connect(client)
        extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = read_to_close(extra, 5)
        assert answer is not None and status_of(answer) == 503
        assert b"retry-after: 1" in answer.lower()
        assert body_of(answer)["error"]["code"] == "ERR_OVERLOADED"
        for s in held:
            s.close()

        def served_again() -> bool:
            try:
                return client.get("/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(served_again, timeout=10, interval=0.05)
        extra.close()


def test_descriptor_exhaustion_neither_starves_nor_floods_the_log(api_process, jobq_settings, tmp_path) -> None:
    """220 idle sockets against a 200-descriptor limit once made legitimate requests time out for 20 s
    and the log grow by 100 MB of accept tracebacks; then, with a cap, most of them were 503s until
    the idle sockets' header deadline."""
    env = {**os.environ, "JOBQ_API_KEYS": f"proj-1:{INGEST}", "DATABASE_URL": f"sqlite:///{tmp_path}/r.db",
           "REDIS_URL": jobq_settings.redis_url, "JOBQ_PREFIX": jobq_settings.prefix,
           "JOBQ_API_HEADER_TIMEOUT": "60"}

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))

    with api_process(env, preexec_fn=limit) as (proc, base, lines):
        port = int(base.rsplit(":", 1)[1])
        socks = []
        for _ in range(220):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            except OSError:
                break
        logged_before = sum(map(len, lines))
        t0 = time.monotonic()
        answers = [legit_request(base, i) for i in range(12)]
        took = time.monotonic() - t0
        logged = sum(map(len, lines)) - logged_before
        held = len(os.listdir(f"/proc/{proc.pid}/fd"))
        for s in socks:
            s.close()
    assert len(socks) == 220
    assert [got for got, _ in answers] == [expected for _, expected in answers]  # was 503 until the deadline
    assert took < 10
    assert held < 200 - 64  # the cap keeps a batch of accepts' worth of descriptors free
    text = "".join(lines)
    assert logged < 20_000, text[-3000:]
    assert "out of system resource" not in text  # accept() never failed
    assert "Traceback" not in text, text[max(0, text.find("Traceback") - 1500):][:4000]


def test_repeat_filter_keeps_a_flood_out_of_the_log() -> None:
    logger = logging.getLogger("jobq_bugreports.test_flood")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger.addHandler(Keep())
    logger.addFilter(RepeatFilter(burst=5, window=60))
    logger.propagate = False
    try:
        for _ in range(1000):
            try:
                raise OSError(24, "Too many open files")
            except OSError:
                logger.error("socket.accept() out of system resource", exc_info=True)
                logger.error("Exception in ASGI application", exc_info=True)
        logger.warning("something else")
    finally:
        logger.handlers.clear()
        logger.filters.clear()
    messages = [r.getMessage() for r in records]
    assert messages.count("socket.accept() out of system resource") == 5
    assert messages.count("Exception in ASGI application") == 5
    # One traceback per burst; none for running out of descriptors, which says it all.
    assert [r.getMessage() for r in records if r.exc_info] == ["Exception in ASGI application"]
    assert records[-1].getMessage() == "something else"


# -- point 3: the body is decoded within a memory budget -----------------------------------------

def test_a_flood_of_tiny_events_is_refused_before_parsing(api) -> None:
    body = b'{"title":"t","sessionReplay":{"events":[' + b",".join([b"{}"] * 700_000) + b"]}}"
    with api() as client:
        t0 = time.monotonic()
        resp = client.post("/api/v1/reports", content=body,
                           headers={"X-API-Key": INGEST, "Content-Type": "application/json"})
        took = time.monotonic() - t0
        real = json.loads((CORPORA / "replays/rrweb-player-demoit-2018.json").read_text())
        ok = client.post("/api/v1/reports", json={"title": "t", "sessionReplay": {"events": real * 5}},
                         headers={"X-API-Key": INGEST})
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]["errors"][0]
    assert err["field"] == "(body)" and "too many JSON values" in err["message"]
    assert took < 5
    assert ok.status_code == 201, ok.text  # a real recording of the same size passes


# -- point 5: numbers and text Python cannot keep ------------------------------------------------

BIG = "1" * 5000


def test_a_real_recording_is_never_held_as_objects(api) -> None:
    """Its events are read one at a time and reach the replay job as the bytes sent: the API's
    allocations peak near three times the body (the body, the events' bytes, the job's payload),
    where parsed events alone cost five to six times it."""
    events = json.loads((CORPORA / "replays/rrweb-player-demoit-2018.json").read_text())
    body = json.dumps({"title": "t", "sessionReplay": {"events": events * 25}}).encode()
    del events
    with api() as client:
        tracemalloc.start()
        try:
            resp = client.post("/api/v1/reports", content=body,
                               headers={"X-API-Key": INGEST, "Content-Type": "application/json"})
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert resp.status_code == 201, resp.text
    assert peak < 3.5 * len(body), f"peak {peak / len(body):.1f}x the body"


@pytest.mark.parametrize(("raw", "field"), [
    ('{"title": BIG}'.replace("BIG", BIG), "title"),
    ('{"title": "t", "sessionReplay": {"events": [{"type": 4, "timestamp": BIG}]}}'.replace("BIG", BIG),
     "sessionReplay.events[0].timestamp"),
    ('{"title": "a\\ud800b"}', "title"),
    ('{"title": "t", "description": "\\udfff"}', "description"),
    ('{"title": "t", "url": NaN}', "url"),
    ('{"title": 1e999}', "title"),
    ('{"title": "t", "\\ud800": 1}', "\ud800"),
])
def test_unusable_numbers_and_lone_surrogates_are_400_naming_the_field(api, raw: str, field: str) -> None:
    with api() as client:
        resp = client.post("/api/v1/reports", content=raw.encode(),
                           headers={"X-API-Key": INGEST, "Content-Type": "application/json"})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["errors"][0]["field"] == field


# -- point 7: ingest keys create, read keys read -------------------------------------------------

def test_ingest_keys_only_create_and_read_keys_only_read(api) -> None:
    with api() as client:
        created = client.post("/api/v1/reports", json={"title": "t"}, headers={"X-API-Key": INGEST})
        assert created.status_code == 201
        rid = created.json()["id"]
        by_ingest = client.get(f"/api/v1/reports/{rid}", headers={"X-API-Key": INGEST})
        by_read = client.get(f"/api/v1/reports/{rid}", headers={"X-API-Key": READ})
        by_other = client.get(f"/api/v1/reports/{rid}", headers={"X-API-Key": OTHER_READ})
        post_by_read = client.post("/api/v1/reports", json={"title": "t"}, headers={"X-API-Key": READ})
        unknown = client.get(f"/api/v1/reports/{rid}", headers={"X-API-Key": "x" * 20})
    assert by_ingest.status_code == 403 and by_ingest.json()["error"]["code"] == "ERR_FORBIDDEN"
    assert "title" not in by_ingest.text
    assert by_read.status_code == 200 and by_read.json()["title"] == "t"
    assert by_other.status_code == 404
    assert post_by_read.status_code == 403
    assert unknown.status_code == 401


def test_a_key_in_both_settings_stops_start_up(jobq_settings, tmp_path) -> None:
    env = {"JOBQ_API_KEYS": f"proj-1:{INGEST}", "JOBQ_API_READ_KEYS": f"proj-1:{INGEST}",
           "DATABASE_URL": f"sqlite:///{tmp_path}/r.db"}
    with pytest.raises(ConfigError, match="both JOBQ_API_KEYS and JOBQ_API_READ_KEYS"):
        create_app(settings=jobq_settings, env=env, specs=fallback_specs())


# -- point 9: no redirect built from Host -----------------------------------------------------------

def test_trailing_slash_is_not_redirected_to_the_host_header(api) -> None:
    with api() as client:
        for method in ("GET", "POST"):
            resp = client.request(method, "/api/v1/reports/", headers={"Host": "evil.example", "X-API-Key": READ})
            assert resp.status_code in (404, 405), resp.text
            assert "location" not in resp.headers


# -- point 16: every refusal reaches a client that is still sending ------------------------------

def report_body() -> bytes:
    """About 673 KB: a real photo and 400 replay events, like the issue's reproduction."""
    photo = (CORPORA / "images/valid/hopper.png").read_bytes()
    events = json.loads((CORPORA / "replays/rrweb-player-demoit-2018.json").read_text())
    shot = "data:image/png;base64," + base64.b64encode(photo * 12).decode()
    return json.dumps({"title": "t", "screenshot": shot, "sessionReplay": {"events": (events * 3)[:400]}}).encode()


def send_all_then_read(client: httpx.Client, head: bytes, body: bytes) -> bytes:
    """Send all of the request, then read the answer; a reset is an exception. With
    ``Connection: close`` (one request per connection) uvicorn alone answered and closed at once,
    so the client, still sending, got a reset instead of its 401 (20 of 20 before the fix)."""
    with connect(client) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        sock.sendall(head)
        for i in range(0, len(body), 8192):
            sock.sendall(body[i:i + 8192])
        answer = read_to_close(sock, 10) if b"connection: close" in head.lower() else sock.recv(65536)
        assert answer
        return answer


@pytest.mark.parametrize(("path", "key", "status"), [
    ("/api/v1/reports", "wrong-key-0123456789abcdef", 401),
    ("/api/v1/reports", READ, 403),
    ("/api/v1/nowhere", INGEST, 404),
])
def test_refusals_reach_a_client_still_sending(api, path: str, key: str, status: int) -> None:
    body = report_body()
    head = POST_HEAD.format(path=path, key=key, length=len(body)).encode()
    one_shot = head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    with api() as client:
        answers = [status_of(send_all_then_read(client, h, body)) for h in [head, one_shot] * 5]
    assert answers == [status] * 10


def test_413_reaches_a_client_still_sending(api) -> None:
    body = report_body()
    head = POST_HEAD.format(path="/api/v1/reports", key=INGEST, length=len(body)).encode()
    with api(max_body=256 * 1024) as client:
        answers = [send_all_then_read(client, head, body) for _ in range(6)]
    assert [status_of(a) for a in answers] == [413] * 6
    assert body_of(answers[0])["error"]["limit"] == 256 * 1024


def test_server_limits_from_the_environment() -> None:
    limits = ServerLimits.from_env({"JOBQ_API_HEADER_TIMEOUT": "2.5", "JOBQ_API_MAX_CONNECTIONS": "10",
                                    "JOBQ_API_STALL_GRACE": "0.5"})
    assert limits.header_timeout == 2.5 and limits.max_connections == 10 and limits.body_timeout == 60
    assert limits.stall_grace == 0.5 and ServerLimits.from_env({}).stall_grace == 1.0
    room = resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 128
    assert ServerLimits.from_env({"JOBQ_API_MAX_CONNECTIONS": str(room + 100)}).max_connections == room
    for bad in ("0", "-1", "soon", "nan"):
        with pytest.raises(ConfigError, match="JOBQ_API_BODY_TIMEOUT"):
            ServerLimits.from_env({"JOBQ_API_BODY_TIMEOUT": bad})


def test_a_client_waiting_for_100_continue_gets_its_refusal_without_sending(api) -> None:
    head = POST_HEAD.format(path="/api/v1/reports", key="wrong-key-0123456789abcdef", length=50_000_000)
    with api() as client, connect(client) as sock:
        sock.sendall(head.replace("\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n").encode())
        answer = read_to_close(sock, 5)
    assert answer is not None and status_of(answer) == 401  # no 100 Continue first: nothing invited
    assert b"100 Continue" not in answer


def test_reads_show_public_urls_only() -> None:
    from jobq_bugreports.intake import public_only

    shown = public_only({
        "originalUrl": "file:///var/lib/jobq/s/1/original.png", "thumbnailUrl": "https://cdn.example/t.png",
        "chunks": ["s3://bucket/replays/1/chunk-001.json.gz", "https://cdn.example/c1.json.gz"],
        "storagePath": "/var/lib/jobq/replays/1", "note": "see: the manual", "route": "/checkout",
        "nested": {"manifestUrl": "gs://bucket/m.json", "count": 3},
    })
    assert shown == {
        "originalUrl": None, "thumbnailUrl": "https://cdn.example/t.png",
        "chunks": [None, "https://cdn.example/c1.json.gz"], "storagePath": None, "note": "see: the manual",
        "route": "/checkout", "nested": {"manifestUrl": None, "count": 3},
    }


def test_429_reaches_a_client_still_sending(served, jobq_settings, sqlite_store_factory, tmp_path) -> None:
    from jobq_bugreports.projects import load_projects

    projects = tmp_path / "projects.json"
    projects.write_text(json.dumps({"proj-1": {"rateLimit": {"requests": 1, "perSeconds": 600}}}))
    app = create_app(settings=jobq_settings, store=sqlite_store_factory(), projects=load_projects(projects),
                     specs=fallback_specs(), api_keys=ApiKeys({"proj-1": INGEST}),
                     read_keys=ApiKeys({"proj-1": READ}))
    body = report_body()
    head = POST_HEAD.format(path="/api/v1/reports", key=INGEST, length=len(body)).encode()
    one_shot = head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    with served(app) as client:
        assert client.post("/api/v1/reports", json={"title": "the one allowed"},
                           headers={"X-API-Key": INGEST}).status_code == 201
        answers = [send_all_then_read(client, h, body) for h in [head, one_shot] * 3]
    assert [status_of(a) for a in answers] == [429] * 6
    assert b"retry-after:" in answers[0].lower()
