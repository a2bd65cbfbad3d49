"""The request body: read within the size limit, decoded within a memory budget, drained before a
refusal.

Decoding JSON builds Python objects that cost far more than their text: ``{}`` is 3 bytes on the
wire and 64 in memory, so a 64 MiB body of empty objects once cost 1.7 GB. Before parsing,
:func:`decode` counts the bytes that open objects and arrays or separate values (C speed, no
allocation) and refuses a body whose objects would cost more than :data:`PARSE_BUDGET` times its
size. Real rrweb recordings estimate at 4.7-6.6 times.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, MutableMapping
from json.decoder import scanstring
from typing import Any

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


def parse_cost(raw: bytes | bytearray) -> int:
    """Estimated bytes of memory the parsed body would take (an upper bound for real JSON)."""
    return sum(raw.count(mark) * cost for mark, cost in _COST.items())


class _Unusable:
    """Stands in for a number Python cannot hold exactly (too many digits, NaN, infinite)."""

    def __init__(self, why: str) -> None:
        self.why = why


def decode(raw: bytearray) -> Any:
    """Parse the body; ``raw`` is emptied once decoded, so its memory is free before enqueueing.

    :raises RequestInvalid: naming ``(body)``, or the field that holds an unusable number.
    """
    cost = parse_cost(raw)
    if cost > PARSE_BUDGET * len(raw) + PARSE_SLACK:
        raise RequestInvalid([{"field": "(body)", "message": (
            f"has too many JSON values for its size (about {cost // 2**20} MiB once parsed, "
            f"over {PARSE_BUDGET} times its size): send fewer, larger events")}])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestInvalid([{"field": "(body)", "message": "is not UTF-8"}]) from None
    raw.clear()
    found: list[_Unusable] = []

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

    decoder = json.JSONDecoder(parse_float=number, parse_int=integer,
                               parse_constant=lambda name: unusable(f"is {name}, which JSON does not allow"))
    try:
        value = parse(text, decoder)
    except json.JSONDecodeError as exc:
        message = f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        raise RequestInvalid([{"field": "(body)", "message": message}]) from None
    except RecursionError:
        raise RequestInvalid([{"field": "(body)", "message": "is nested too deeply"}]) from None
    if found:
        path = _path_to(value, found[0])
        raise RequestInvalid([{"field": path or "(body)", "message": found[0].why}])
    return value


# Which members are decoded one at a time: the replay's events, the bulk of a large body.
_STEPWISE: dict[str, Any] = {"sessionReplay": {"events": "items"}}
_SPACE = re.compile(r"[ \t\n\r]*")


def parse(text: str, decoder: json.JSONDecoder) -> Any:
    """What ``decoder.decode(text)`` returns, but the top-level object, ``sessionReplay`` and each
    of its events are decoded one at a time: the GIL is let go between events, so a 64 MiB replay
    being parsed in a worker thread does not stall the event loop for seconds."""
    value, end = _value(text, _SPACE.match(text, 0).end(), decoder, _STEPWISE)  # type: ignore[union-attr]
    end = _SPACE.match(text, end).end()  # type: ignore[union-attr]
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


def _value(text: str, i: int, decoder: json.JSONDecoder, plan: Any) -> tuple[Any, int]:
    space = _SPACE.match
    if plan == "items" and text.startswith("[", i):
        items: list[Any] = []
        i = space(text, i + 1).end()  # type: ignore[union-attr]
        if text.startswith("]", i):
            return items, i + 1
        while True:
            item, i = decoder.raw_decode(text, i)
            items.append(item)
            i = space(text, i).end()  # type: ignore[union-attr]
            if text.startswith("]", i):
                return items, i + 1
            if not text.startswith(",", i):
                raise json.JSONDecodeError("Expecting ',' delimiter", text, i)
            i = space(text, i + 1).end()  # type: ignore[union-attr]
    if isinstance(plan, dict) and text.startswith("{", i):
        members: dict[str, Any] = {}
        i = space(text, i + 1).end()  # type: ignore[union-attr]
        if text.startswith("}", i):
            return members, i + 1
        while True:
            if not text.startswith('"', i):
                raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, i)
            key, i = scanstring(text, i + 1)
            i = space(text, i).end()  # type: ignore[union-attr]
            if not text.startswith(":", i):
                raise json.JSONDecodeError("Expecting ':' delimiter", text, i)
            members[key], i = _value(text, space(text, i + 1).end(), decoder, plan.get(key))  # type: ignore[union-attr]
            i = space(text, i).end()  # type: ignore[union-attr]
            if text.startswith("}", i):
                return members, i + 1
            if not text.startswith(",", i):
                raise json.JSONDecodeError("Expecting ',' delimiter", text, i)
            i = space(text, i + 1).end()  # type: ignore[union-attr]
    return decoder.raw_decode(text, i)


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
