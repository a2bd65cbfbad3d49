"""How ``jobq api`` serves: uvicorn's h11 protocol with deadlines, a connection cap and a quiet log.

uvicorn alone starts no timer before the first request, none while headers or a body trickle in,
and takes connections until ``accept()`` fails for want of descriptors (then asyncio logs a
traceback per attempt). :class:`GuardedProtocol` adds, per connection:

- a header deadline from the connection's start (or the end of the previous response): a slow or
  idle client is closed, with a 408 if it had started a request;
- a body deadline from the end of the headers, also covering a body still arriving after an early
  answer;
- a cap on open connections, kept below the process's descriptor limit with room for one accept
  batch. A connection arriving at the cap takes the place of the connection idle longest, one that
  has sent no byte of a request (none since it was accepted, or none since its last response): that
  one is closed without a word, as nginx reuses kept-alive connections when it runs out. If none is
  idle, it takes the place of the connection whose request headers have stalled longest: one that
  has sent part of its headers but no byte for more than the stall grace (1 s; a real client sends
  its headers in one go, within milliseconds), in the spirit of Apache mod_reqtimeout's minimum
  rate. That one is answered 408 and closed. A connection whose headers are complete (its body
  arriving, or its answer being made) is never pushed out; the body deadline covers it. Only when
  every connection is busy with a request (its headers complete, or arriving within the grace) is
  the newcomer answered 503 at once and closed.

Idle sockets and sockets that send a byte and stop therefore cannot lock legitimate clients out for
long: past the grace, each newcomer pushes out the oldest of them, and a connection whose headers
arrive in one go is never pushed out, however fast an attacker reconnects. What the process cannot
do alone is tell clients apart: sockets that trickle a header byte more often than the grace keep
their slot until the header deadline; an attacker who reconnects and sends a byte more than
``max_connections`` times per grace keeps every slot fresh, so newcomers get 503s; and one who
reconnects ``max_connections`` times within the moment between a legitimate client's connect and
its first bytes can push that client out. Limits per client address belong in a reverse proxy
(docs/operations.md, Security).

A closing connection whose client is still sending is closed by half: the answer is written, our
side shut for writing, and what the client still sends is read and dropped for a moment, so the
client reads the answer instead of a reset (``Broken pipe``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import attrs
import h11
from jobq import ConfigError
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT = "JOBQ_API_HEADER_TIMEOUT"
BODY_TIMEOUT = "JOBQ_API_BODY_TIMEOUT"
IDLE_TIMEOUT = "JOBQ_API_IDLE_TIMEOUT"
MAX_CONNECTIONS = "JOBQ_API_MAX_CONNECTIONS"
STALL_GRACE = "JOBQ_API_STALL_GRACE"

# Descriptors kept for everything but client sockets: Redis and database pools, the listening
# socket, log files, threads' temporary files.
RESERVED_FDS = 64
# The listen queue, which is also how many connections asyncio accepts in one go before any of
# them is seen (and refused, if over the cap): the cap leaves room for one such batch, so a burst
# never makes accept() fail for want of descriptors.
BACKLOG = 64
LINGER_SECONDS = 2.0
LINGER_BUDGET = RESERVED_FDS // 4  # refused connections that may linger at once; the rest close at once
MAX_HEADER_BYTES = 16 * 1024

_OVERLOADED = (b'{"error":{"code":"ERR_OVERLOADED","message":"too many open connections; retry later"}}')
_TIMEOUT = b'{"error":{"code":"ERR_REQUEST_TIMEOUT","message":"the request did not arrive in time"}}'


def _canned(status: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\nconnection: close\r\n" + extra
            + b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


REFUSAL_503 = _canned(b"503 Service Unavailable", _OVERLOADED, b"retry-after: 1\r\n")
REFUSAL_408 = _canned(b"408 Request Timeout", _TIMEOUT)


def _fd_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@attrs.frozen(kw_only=True)
class ServerLimits:
    """Deadlines (seconds) and the connection cap of ``jobq api``.

    :param header_timeout: time for a request's headers, from the connection's start or the end
        of the previous response.
    :param body_timeout: time for a request's body, from the end of its headers.
    :param idle_timeout: how long a kept-alive connection waits for the next request.
    :param max_connections: open connections at most; one more closes the connection idle
        longest, else the one whose headers have stalled longest (past ``stall_grace``), or is
        answered 503 and closed if every connection is busy with a request.
    :param stall_grace: how long a connection may send no byte in the middle of its request
        headers before a newcomer at the cap may push it out.
    """

    header_timeout: float = 10.0
    body_timeout: float = 60.0
    idle_timeout: float = 5.0
    max_connections: int = 1000
    stall_grace: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerLimits:
        """Read the ``JOBQ_API_*`` settings; the cap is lowered to fit the descriptor limit."""
        e = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, field, kind in ((HEADER_TIMEOUT, "header_timeout", float), (BODY_TIMEOUT, "body_timeout", float),
                                  (IDLE_TIMEOUT, "idle_timeout", float), (STALL_GRACE, "stall_grace", float),
                                  (MAX_CONNECTIONS, "max_connections", int)):
            raw = e.get(name)
            if not raw:
                continue
            try:
                value = kind(raw)
            except ValueError:
                raise ConfigError(f"{name}={raw!r} must be a positive number") from None
            if not 0 < value < 86400 * 365:
                raise ConfigError(f"{name}={raw!r} must be a positive number")
            values[field] = value
        limits = cls(**values)
        room = _fd_limit() - RESERVED_FDS - BACKLOG
        if room < 1:
            raise ConfigError(f"the descriptor limit ({_fd_limit()}) leaves no room for clients; raise ulimit -n")
        if limits.max_connections > room:
            level = logging.WARNING if MAX_CONNECTIONS in values and e.get(MAX_CONNECTIONS) else logging.INFO
            logging.getLogger(__name__).log(
                level, "%s lowered from %d to %d to fit the descriptor limit (ulimit -n %d)",
                MAX_CONNECTIONS, limits.max_connections, room, _fd_limit())
            limits = attrs.evolve(limits, max_connections=room)
        return limits


class GuardedProtocol(H11Protocol):
    """uvicorn's h11 protocol with per-phase deadlines, a connection cap and lingering closes.

    Subclassed per server by :func:`guarded_protocol`, which sets :attr:`limits`, :attr:`idle` and
    :attr:`heading`.
    """

    limits = ServerLimits()
    #: The server's connections that have sent no byte of a request, the one idle longest first:
    #: the ones a newcomer at the cap pushes out first (O(1) to add, remove and take the oldest).
    idle: OrderedDict[GuardedProtocol, None] = OrderedDict()
    #: The server's connections in the middle of their request headers, mapped to the loop time of
    #: their last byte, the one stalled longest first (each byte moves its connection to the end):
    #: a newcomer at the cap with none idle pushes out the first if it has stalled past the grace.
    heading: OrderedDict[GuardedProtocol, float] = OrderedDict()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._deadline: asyncio.TimerHandle | None = None
        self._phase: str | None = None
        self._lingering = False
        self._raw = transport
        super().connection_made(_ClosingByHalves(transport, self))  # type: ignore[arg-type]
        open_now = len(self.connections)
        if open_now > self.limits.max_connections and not (self._push_out_idlest() or self._push_out_stalled()):
            _quiet_log.warning("connection refused: %d open connections is the cap (%s)",
                               self.limits.max_connections, MAX_CONNECTIONS)
            if open_now > self.limits.max_connections + LINGER_BUDGET:
                transport.write(REFUSAL_503)  # no descriptors to spare for lingering
                transport.close()
            else:
                self.linger_close(REFUSAL_503)
            return
        self._watch()
        self._note_phase()

    def _push_out_idlest(self) -> bool:
        """Close the connection idle longest to make room; False if none is idle."""
        while self.idle:
            victim, _ = self.idle.popitem(last=False)
            if victim._lingering or victim._raw.is_closing():
                continue  # already on its way out (a deadline); it leaves the set when it is lost
            victim._make_room(b"")
            _quiet_log.info("idle connection closed to make room: %d open connections is the cap (%s)",
                            self.limits.max_connections, MAX_CONNECTIONS)
            return True
        return False

    def _push_out_stalled(self) -> bool:
        """Close the connection whose headers have stalled longest, if past the grace; False if
        none has (every connection's headers are then complete, or arriving within the grace)."""
        while self.heading:
            victim, last_byte = next(iter(self.heading.items()))
            if victim._lingering or victim._raw.is_closing():
                del self.heading[victim]
                continue
            if self.loop.time() - last_byte < self.limits.stall_grace:
                return False  # the first stalled longest: every other one is fresher still
            del self.heading[victim]
            # Everything it sent has been read (its last byte came a grace ago): no reset to fear,
            # so it gets its 408 without lingering, which would keep the slot.
            victim._make_room(REFUSAL_408)
            _quiet_log.info("connection with stalled headers closed to make room: %d open connections is "
                            "the cap (%s), no byte for %s s (%s)", self.limits.max_connections,
                            MAX_CONNECTIONS, self.limits.stall_grace, STALL_GRACE)
            return True
        return False

    def _make_room(self, answer: bytes) -> None:
        """Leave the cap's count at once and close, after ``answer`` if any (for a newcomer)."""
        self._cancel()
        # Its slot is free now; its descriptor is released at the loop's next turn, before the
        # next batch of accepts.
        self.connections.discard(self)
        if answer:
            self._raw.write(answer)
        self._raw.close()

    def _note_phase(self, byte_came: bool = False) -> None:
        """Keep :attr:`idle` and :attr:`heading` up to date: in :attr:`idle` (keeping its place)
        while no byte of a request has come since the connection was accepted or its last response;
        in :attr:`heading` while part of the headers has come, moved to the end when ``byte_came``;
        in neither otherwise."""
        conn = self.conn
        if (conn.their_state is h11.IDLE and conn.our_state is h11.IDLE
                and not self._lingering and not self._raw.is_closing()):
            if not conn.trailing_data[0]:
                self.heading.pop(self, None)
                self.idle.setdefault(self, None)
                return
            self.idle.pop(self, None)
            if byte_came or self not in self.heading:
                self.heading[self] = self.loop.time()
                self.heading.move_to_end(self)
            return
        self.idle.pop(self, None)
        self.heading.pop(self, None)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # read and dropped: the answer is already on its way
        super().data_received(data)
        self._watch()
        self._note_phase(byte_came=True)

    def eof_received(self) -> bool | None:
        if self._lingering:
            self._raw.close()
        return None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()
        self._note_phase()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self.idle.pop(self, None)
        self.heading.pop(self, None)
        super().connection_lost(exc)

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _watch(self) -> None:
        """Arm the deadline of the phase the connection is in, when it enters that phase."""
        if self.transport.is_closing() or self._lingering:
            self._cancel()
            return
        if self.conn.their_state is h11.SEND_BODY:
            phase, timeout = "body", self.limits.body_timeout
        elif self.cycle is None or self.cycle.response_complete:
            phase, timeout = "headers", self.limits.header_timeout
        else:
            phase, timeout = None, 0.0  # the request is in; the app is answering
        if phase == self._phase:
            return
        self._cancel()
        self._phase = phase
        if phase is not None:
            self._deadline = self.loop.call_later(timeout, self._expired, phase)

    def _expired(self, phase: str) -> None:
        self._deadline = None
        if self.transport.is_closing() or self._lingering:
            return
        started = self.conn.their_state is not h11.IDLE or bool(self.conn.trailing_data[0])
        _quiet_log.info("connection closed: %s not received within %s s", phase,
                        self.limits.header_timeout if phase == "headers" else self.limits.body_timeout)
        if phase == "headers" and started:
            self.linger_close(REFUSAL_408)
        else:
            # Idle, or the app waits for a body that does not come: it sees a disconnect.
            self._raw.close()

    def linger_close(self, answer: bytes) -> None:
        """Write ``answer``, shut our side, then read and drop for :data:`LINGER_SECONDS`."""
        self._cancel()
        self._lingering = True
        self.idle.pop(self, None)
        self.heading.pop(self, None)
        raw = self._raw
        if answer:
            raw.write(answer)
        try:
            if raw.can_write_eof():
                raw.write_eof()
        except OSError:  # the client has already gone (reset before we could shut our side)
            raw.close()
            return
        raw.resume_reading()
        self.loop.call_later(LINGER_SECONDS, raw.close)

    def client_still_sending(self) -> bool:
        """True when closing now could reset the connection under unread request bytes."""
        state = self.conn.their_state
        return state is h11.SEND_BODY or state is h11.ERROR or (
            state is h11.IDLE and bool(self.conn.trailing_data[0]))

    def shutdown(self) -> None:
        if self._lingering:
            self._raw.close()
            return
        try:
            super().shutdown()
        except h11.LocalProtocolError:
            self._raw.close()


class _ClosingByHalves:
    """The transport as uvicorn sees it: closing it while the client is still sending becomes
    :meth:`GuardedProtocol.linger_close`, so the answer written just before is read, not reset."""

    def __init__(self, transport: asyncio.Transport, protocol: GuardedProtocol) -> None:
        self._transport = transport
        self._protocol = protocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def close(self) -> None:
        p = self._protocol
        if not p._lingering and not self._transport.is_closing() and p.client_still_sending():
            p.linger_close(b"")
        else:
            self._transport.close()


def guarded_protocol(limits: ServerLimits) -> type[GuardedProtocol]:
    """A :class:`GuardedProtocol` class bound to ``limits`` and connection registers of its own
    (uvicorn instantiates it per connection; one class per server)."""
    return type("GuardedProtocol", (GuardedProtocol,), {"limits": limits, "idle": OrderedDict(),
                                                        "heading": OrderedDict()})


class RepeatFilter(logging.Filter):
    """Lets through at most ``burst`` records of one message template per ``window`` seconds, then
    one summary line when the window ends: a client that provokes errors cannot flood the log."""

    def __init__(self, burst: int = 5, window: float = 60.0) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self._seen: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        key = f"{record.name}:{record.msg}"
        start, count = self._seen.get(key, (now, 0))
        if now - start > self.window:
            if count > self.burst:
                record.msg = f"{record.msg} (and {count - self.burst} more like it in {self.window:.0f} s)"
            start, count = now, 0
        if len(self._seen) > 1000:
            self._seen.clear()
        self._seen[key] = (start, count + 1)
        if count >= self.burst:
            return False
        if record.exc_info and (count or _NO_TRACEBACK in str(record.msg)):
            record.exc_info = None  # one traceback per burst is enough; none for a known condition
        return True


_quiet_log = logging.getLogger("jobq_bugreports.server")
# asyncio's words when accept() fails for want of descriptors; the traceback adds nothing.
_NO_TRACEBACK = "out of system resource"
_NOISY = ("asyncio", "uvicorn.error", "jobq_bugreports.server")


def quiet_logs() -> None:
    """Attach a :class:`RepeatFilter` to the loggers a hostile client can make speak."""
    for name in _NOISY:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatFilter) for f in logger.filters):
            logger.addFilter(RepeatFilter())


def server_config(app: Any, *, host: str = "127.0.0.1", port: int = 0, limits: ServerLimits | None = None,
                  log_level: str = "info", **extra: Any) -> Any:
    """The uvicorn configuration ``jobq api`` runs with (tests use it too)."""
    import uvicorn

    limits = limits or ServerLimits()
    return uvicorn.Config(
        app, host=host, port=port, http=guarded_protocol(limits), log_level=log_level,
        timeout_keep_alive=int(max(1, limits.idle_timeout)), h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        # Proxy headers are off: nothing here uses the client address, and trusting
        # X-Forwarded-* is a deployment decision.
        proxy_headers=False, server_header=False, date_header=True, ws="none", lifespan="on", backlog=BACKLOG,
        **extra,
    )
