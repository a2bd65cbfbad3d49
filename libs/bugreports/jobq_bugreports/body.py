"""The request body: read within the size limit, decoded within a memory budget, drained before a
refusal.

Decoding JSON builds Python objects that cost far more than their text: ``{}`` is 3 bytes on the
wire and 64 in memory, so a 64 MiB body of empty objects once cost 1.7 GB. Before parsing,
:func:`decode` counts the bytes that open objects and arrays or separate values (C speed, no
allocation) and refuses a body whose objects would cost more than :data:`PARSE_BUDGET` times its
size. Real rrweb recordings estimate at 4.7-6.6 times.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from jobq.rawjson import RawJSON, TextWindow
from starlette.requests import Request

from .intake import BodyTooLarge, RequestInvalid

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Estimated bytes of memory per "{", per "[" and per "," of a body once parsed: a small dict with
# its keys, a list, one more value and its slot (measured with tracemalloc on rrweb recordings).
_COST = {b"{": 120, b"[": 72, b",": 40}
PARSE_BUDGET = 8
PARSE_SLACK = 1024 * 1024
MAX_NUMBER_DIGITS = 4300  # Python refuses to convert longer integers (sys.get_int_max_str_digits)


async def read_body(request: Request, limit: int) -> bytearray:
    """The request body, refused with :class:`BodyTooLarge` as soon as it passes ``limit`` bytes:
    a lying or absent ``Content-Length`` never makes us buffer more than the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body of {declared} bytes is over the {limit}-byte limit")
    body = bytearray()
    async for chunk in request.stream():
        if len(body) + len(chunk) > limit:
            raise BodyTooLarge(f"body is over the {limit}-byte limit")
        body += chunk
    return body


GIVE_BACK_ABOVE = 16 * 1024 * 1024


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc
        return None


def give_back_memory() -> None:
    """Return freed heap pages to the system after a large body: glibc keeps buffers under its
    (growing) mmap threshold in the heap, so three 64 MiB bodies once left 250 MiB resident."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def parse_cost(raw: bytes | bytearray) -> int:
    """Estimated bytes of memory the parsed body would take (an upper bound for real JSON)."""
    return sum(raw.count(mark) * cost for mark, cost in _COST.items())


class _Unusable:
    """Stands in for a number Python cannot hold exactly (too many digits, NaN, infinite)."""

    def __init__(self, why: str) -> None:
        self.why = why


def decode(raw: bytearray) -> Any:
    """Parse the body; ``raw`` is emptied once read (also when refused), so its memory is free
    before enqueueing.

    The replay's events come back as one :class:`~jobq.RawJSON` of their bytes (each event parsed
    and checked on the way, one at a time): they go into the replay job as sent, never held as
    objects. The text is decoded a window at a time (:class:`~jobq.rawjson.TextWindow`).

    :raises RequestInvalid: naming ``(body)``, or the field that holds an unusable number.
    """
    try:
        return _decode(raw)
    finally:
        raw.clear()


def _decode(raw: bytearray) -> Any:
    cost = parse_cost(raw)
    if cost > PARSE_BUDGET * len(raw) + PARSE_SLACK:
        raise RequestInvalid([{"field": "(body)", "message": (
            f"has too many JSON values for its size (about {cost // 2**20} MiB once parsed, "
            f"over {PARSE_BUDGET} times its size): send fewer, larger events")}])
    found: list[_Unusable] = []
    # Numbers Python cannot hold exactly are looked for by callbacks, a Python call per number:
    # only when the bytes hold something that may be one (a long run of digits, a 3-digit
    # exponent, NaN, Infinity; also inside strings, which costs time, never a wrong answer).
    decoder = _careful_decoder(found) if _may_hold_unusable(raw) else _PLAIN
    window = TextWindow(raw)
    try:
        value = _value(window, decoder, _STEPWISE, "", found)
        if window.peek():
            raise window.error("Extra data")
        return value
    except UnicodeDecodeError:
        raise RequestInvalid([{"field": "(body)", "message": "is not UTF-8"}]) from None
    except json.JSONDecodeError as exc:
        message = f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        raise RequestInvalid([{"field": "(body)", "message": message}]) from None
    except RecursionError:
        raise RequestInvalid([{"field": "(body)", "message": "is nested too deeply"}]) from None
    finally:
        window.release()


_PLAIN = json.JSONDecoder()
# digits become "0", "E" becomes "e" and "+" goes: "1E+400" reads "0e000"
_NUMBER_SHAPE = bytes.maketrans(b"123456789E", b"000000000e")
_SUSPECTS = (b"e000", b"0" * 309, b"NaN", b"Infinity")
_SCAN = 1 << 20


def _may_hold_unusable(raw: bytearray) -> bool:
    """Whether the bytes hold a 3-digit exponent, a run of 309 digits, ``NaN`` or ``Infinity``:
    the only ways to write a number Python cannot hold exactly. A megabyte at a time (0.4 s for
    70 MiB, against 2 s for one regular expression)."""
    overlap = len(_SUSPECTS[1])
    view = memoryview(raw)
    try:
        for at in range(0, len(raw), _SCAN):
            piece = view[at:at + _SCAN + overlap].tobytes().translate(_NUMBER_SHAPE, b"+")
            if any(s in piece for s in _SUSPECTS):
                return True
    finally:
        view.release()
    return False


def _careful_decoder(found: list[_Unusable]) -> json.JSONDecoder:
    def unusable(why: str) -> _Unusable:
        found.append(_Unusable(why))
        return found[-1]

    def number(text: str) -> float | _Unusable:
        value = float(text)
        return value if math.isfinite(value) else unusable("is a number too large to represent")

    def integer(text: str) -> int | _Unusable:
        if len(text) > MAX_NUMBER_DIGITS:
            return unusable(f"is an integer of more than {MAX_NUMBER_DIGITS} digits")
        return int(text)

    return json.JSONDecoder(parse_float=number, parse_int=integer,
                            parse_constant=lambda name: unusable(f"is {name}, which JSON does not allow"))


# How members are read: the top-level object and ``sessionReplay`` member by member, the replay's
# events ("raw objects") one at a time into a RawJSON; everything else whole.
_STEPWISE: dict[str, Any] = {"sessionReplay": {"events": "raw objects"}}


def _value(window: TextWindow, decoder: json.JSONDecoder, plan: Any, path: str,
           found: list[_Unusable]) -> Any:
    first = window.peek()
    if plan == "raw objects" and first == "[":
        start, count = window.offset(), 0
        for count, item in enumerate(window.array_items(decoder), 1):
            _refuse_unusable(found, item, f"{path}[{count - 1}]")
            if type(item) is not dict:
                raise RequestInvalid([{"field": f"{path}[{count - 1}]", "message": "must be an object"}])
        return RawJSON(window.slice(start, window.offset())) if count else []
    if isinstance(plan, dict) and first == "{":
        members: dict[str, Any] = {}
        window.i += 1
        if window.peek() == "}":
            window.i += 1
            return members
        while True:
            key = window.key()
            members[key] = _value(window, decoder, plan.get(key), f"{path}.{key}" if path else key, found)
            if window.peek() == "}":
                window.i += 1
                return members
            window.take(",", "Expecting ',' delimiter")
    value = window.value(decoder)
    _refuse_unusable(found, value, path)
    return value


def _refuse_unusable(found: list[_Unusable], value: Any, path: str) -> None:
    if found:  # the last one: a value cut by the window's end is parsed again
        inner = _path_to(value, found[-1]) or ""
        field = path + inner if inner.startswith("[") else ".".join(p for p in (path, inner) if p)
        raise RequestInvalid([{"field": field or "(body)", "message": found[-1].why}])


def _path_to(value: Any, target: object) -> str | None:
    """Where ``target`` sits in ``value``: ``sessionReplay.events[3].data.x`` (only on bad input)."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        node, path = stack.pop()
        if node is target:
            return path
        if isinstance(node, dict):
            stack.extend((v, f"{path}.{k}" if path else str(k)) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(node))
    return None


class DrainBody:
    """ASGI middleware: before an answer goes out, read and drop what is left of the request body,
    up to ``limit`` bytes in all, so a client still sending gets the answer (a 401 for a wrong key,
    a 404...) rather than a reset. Past the limit the answer says ``connection: close``; the server
    then closes by halves (see :mod:`jobq_bugreports.server`). A client waiting on
    ``Expect: 100-continue`` is not invited to send: it has sent nothing yet."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = {"done": False, "read": 0}
        waiting = any(k == b"expect" and v.lower() == b"100-continue" for k, v in scope["headers"])

        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                state["done"] = not message.get("more_body", False)
            else:
                state["done"] = True
            return message

        async def drained(message: Message) -> None:
            if message["type"] == "http.response.start" and not state["done"]:
                if not (waiting and not state["read"]):
                    while not state["done"] and state["read"] <= self.limit:
                        await counted()
                if not state["done"]:
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, counted, drained)
