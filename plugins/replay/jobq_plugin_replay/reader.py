"""Stream a replay payload: its ids, then its events one by one, never the whole list in memory.

The payload is ``{"bugReportId", "projectId", "replayData": [events]}`` as raw JSON bytes
(inline in Redis or claim-checked in storage: ``job.open_payload()`` hides which). Every byte
goes through a size cap and the :class:`~.guard.NestingGuard` before ijson parses it.

The ids and the ``privacy`` options are read from the head of the payload (producers send them
before ``replayData``; the ids are at most 128 bytes each). Ids after the events are read by a
second pass; ``privacy`` after the events is refused, since the events are masked as they are
read (the second pass runs whenever the payload does not end with ``replayData``).

Payloads up to ``WHOLE_PARSE_BYTES`` (1 MiB) are read whole and parsed by the standard library's
``json`` in one call instead: three times faster than ijson on 1,000 events (measured,
docs/plugins/replay.md) for at most ~15 MB of objects. The same guard and checks apply to both.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import IO, Any

import ijson

from .errors import ERR_INVALID_REPLAY, ERR_NESTING_TOO_DEEP, ERR_PAYLOAD_TOO_LARGE, ReplayRejected
from .guard import NestingGuard

HEAD_BYTES = 16 * 1024
WHOLE_PARSE_BYTES = 1024 * 1024  # smaller payloads are parsed in one call: 3x faster, memory no concern
BLOCK_BYTES = 64 * 1024  # ijson builds all the events of a block at once: ~20x the block in memory
ID_KEYS = ("bugReportId", "projectId")
PRIVACY_KEY = "privacy"
EVENTS_KEY = "replayData"
KEYS = (*ID_KEYS, PRIVACY_KEY, EVENTS_KEY)
_TAIL_BYTES = 16
_INF = float("inf")


class ReplayReader:
    """One pass over a payload: :meth:`start` reads the head, :meth:`events` yields the events.

    :param opener: returns a new binary stream of the payload (called again only when the ids
        follow the events).
    :param max_bytes: payloads larger than this are refused, before reading when the size is known.
    :param max_depth: deepest JSON nesting accepted.
    :param on_progress: called with the fraction of the payload read (0..1) after each block,
        when the size is known.
    :param whole_below: payloads up to this size are parsed in one call (default ``WHOLE_PARSE_BYTES``).
    """

    def __init__(self, opener: Callable[[], IO[bytes]], *, max_bytes: int, max_depth: int,
                 on_progress: Callable[[float], None] | None = None,
                 whole_below: int | None = None) -> None:
        self._opener = opener
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        self.whole_below = WHOLE_PARSE_BYTES if whole_below is None else whole_below
        self._whole: list[Any] | None = None
        self._on_progress = on_progress
        self.ids: dict[str, str] = {}
        self.privacy: Any = None  # the raw ``privacy`` value, checked by the caller
        self._tail = b""
        self.size: int | None = None
        self.bytes_read = 0
        self._stream: IO[bytes] | None = None
        self._head = b""
        self._guard = NestingGuard(max_depth)
        self._eof = False

    # -- the head ------------------------------------------------------------------------
    def start(self) -> dict[str, str]:
        """Open the payload, check its size and read the ids found before ``replayData``."""
        self._stream = self._opener()
        self.size = _known_size(self._stream)
        if self.size is not None and self.size > self.max_bytes:
            raise _too_large(self.size, self.max_bytes)
        head = self._read_raw(HEAD_BYTES)
        self._guard.feed(head, final=self._eof)
        whole_size = len(head) if self._eof else self.size
        if whole_size is not None and whole_size <= self.whole_below:
            self._parse_whole(head)
        else:
            self._head = head
            self._scan_head(head)
        return self.ids

    def _parse_whole(self, head: bytes) -> None:
        parts = [head]
        while not self._eof:
            block = self._read_raw(BLOCK_BYTES)
            self._guard.feed(block, final=self._eof)
            parts.append(block)
        self.close()
        try:
            doc = json.loads(b"".join(parts), parse_constant=_refuse_constant, parse_float=_finite_float)
        except RecursionError:
            raise ReplayRejected(ERR_NESTING_TOO_DEEP, "the payload is nested too deeply") from None
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError: positions, never content
            raise ReplayRejected(ERR_INVALID_REPLAY, f"the payload is not valid JSON ({exc})") from None
        if type(doc) is not dict:
            raise ReplayRejected(ERR_INVALID_REPLAY, "the payload must be a JSON object")
        for key, value in doc.items():
            if key not in KEYS:
                raise ReplayRejected(ERR_INVALID_REPLAY, f"unknown key {_short(key)!r} in the payload")
            if key == PRIVACY_KEY:
                self.privacy = value
            if key in ID_KEYS:
                if type(value) is not str:
                    raise ReplayRejected(ERR_INVALID_REPLAY, f"{key} must be a string")
                self.ids[key] = value
        events = doc.get(EVENTS_KEY)
        if type(events) is not list:
            raise ReplayRejected(ERR_INVALID_REPLAY, "the payload has no replayData" if events is None
                                 else "replayData must be a list of events")
        self._whole = events

    def _scan_head(self, head: bytes) -> None:
        key = None
        builder: Any = None
        try:
            for prefix, event, value in ijson.parse(io.BytesIO(head)):
                if prefix == "":
                    if builder is not None:
                        self.privacy, builder = builder.value, None
                    if event == "start_map":
                        continue
                    if event == "map_key":
                        if value not in KEYS:
                            raise ReplayRejected(ERR_INVALID_REPLAY,
                                                 f"unknown key {_short(value)!r} in the payload")
                        key = value
                        continue
                    if event == "end_map":
                        raise ReplayRejected(ERR_INVALID_REPLAY, "the payload has no replayData")
                    raise ReplayRejected(ERR_INVALID_REPLAY, "the payload must be a JSON object")
                if key == EVENTS_KEY:
                    if event == "start_array":
                        return
                    raise ReplayRejected(ERR_INVALID_REPLAY, "replayData must be a list of events")
                if key == PRIVACY_KEY:
                    if builder is None:
                        builder = ijson.ObjectBuilder()
                    builder.event(event, value)
                    continue
                if key in ID_KEYS and prefix == key:
                    if event != "string":
                        raise ReplayRejected(ERR_INVALID_REPLAY, f"{key} must be a string")
                    self.ids[key] = value
        except ijson.JSONError as exc:
            if not self._eof and isinstance(exc, ijson.IncompleteJSONError) and "premature EOF" in str(exc):
                raise ReplayRejected(ERR_INVALID_REPLAY,
                                     f"replayData must start within the first {HEAD_BYTES} bytes") from None
            raise _invalid_json(exc) from None
        raise ReplayRejected(ERR_INVALID_REPLAY, "the payload has no replayData")

    # -- the events ----------------------------------------------------------------------
    def events(self) -> Iterator[Any]:
        """Yield each element of ``replayData`` as parsed JSON (numbers with a fraction as floats)."""
        if self._stream is None:
            self.start()
        if self._whole is not None:
            events, self._whole = self._whole, []
            yield from events
        else:
            yield from self._stream_events()
        missing = [k for k in ID_KEYS if k not in self.ids]
        if self._whole is not None:
            if missing:
                raise ReplayRejected(ERR_INVALID_REPLAY, f"the payload has no {missing[0]}")
        elif missing or not _ends_with_array(self._tail):
            self._read_trailing_keys(missing)

    def _stream_events(self) -> Iterator[Any]:
        try:
            yield from ijson.items(_Source(self), "replayData.item", use_float=True, buf_size=BLOCK_BYTES)
        except ijson.JSONError as exc:
            raise _invalid_json(exc) from None
        finally:
            self.close()

    def _read_trailing_keys(self, missing: list[str]) -> None:
        """Second pass over the keys after ``replayData`` (the stream was already guarded and size-checked)."""
        after = False
        with self._opener() as stream:
            try:
                for prefix, event, value in ijson.parse(stream, buf_size=BLOCK_BYTES):
                    if prefix == "" and event == "map_key":
                        if value == EVENTS_KEY:
                            after = True
                        elif after and value == PRIVACY_KEY:
                            raise ReplayRejected(ERR_INVALID_REPLAY, "privacy must come before replayData")
                        elif after and value not in KEYS:
                            raise ReplayRejected(ERR_INVALID_REPLAY, f"unknown key {_short(value)!r} in the payload")
                    elif prefix in missing:
                        if event != "string":
                            raise ReplayRejected(ERR_INVALID_REPLAY, f"{prefix} must be a string")
                        self.ids[prefix] = value
                        missing.remove(prefix)
            except ijson.JSONError as exc:
                raise _invalid_json(exc) from None
        if missing:
            raise ReplayRejected(ERR_INVALID_REPLAY, f"the payload has no {missing[0]}")

    # -- reading bytes -------------------------------------------------------------------
    def read(self, n: int) -> bytes:
        """Next bytes for the parser: the head first, then the stream, each block guarded."""
        if self._head:
            data, self._head = self._head, b""
            return data
        if self._eof:
            return b""
        data = self._read_raw(max(n, 1))
        self._guard.feed(data, final=self._eof)
        return data

    def _read_raw(self, n: int) -> bytes:
        assert self._stream is not None
        parts = []
        want = n
        while want > 0:
            data = self._stream.read(want)
            if not data:
                self._eof = True
                break
            parts.append(data)
            want -= len(data)
        data = b"".join(parts)
        if data:
            self._tail = (self._tail + data)[-_TAIL_BYTES:]
        self.bytes_read += len(data)
        if self.bytes_read > self.max_bytes:
            raise _too_large(self.bytes_read, self.max_bytes, at_least=True)
        if self._on_progress is not None and self.size:
            self._on_progress(min(1.0, self.bytes_read / self.size))
        return data

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()


class _Source:
    """The file-like object ijson reads from."""

    __slots__ = ("_reader",)

    def __init__(self, reader: ReplayReader) -> None:
        self._reader = reader

    def read(self, n: int = -1) -> bytes:
        if n == 0:  # ijson probes with read(0) to tell bytes from text
            return b""
        return self._reader.read(n if n > 0 else BLOCK_BYTES)


def _known_size(stream: IO[bytes]) -> int | None:
    """The stream's total size when it can tell without reading (files, storage objects, BytesIO)."""
    size = getattr(stream, "size", None)
    if isinstance(size, int):
        return size
    try:
        if stream.seekable():
            here = stream.tell()
            end = stream.seek(0, io.SEEK_END)
            stream.seek(here)
            return end - here
    except (OSError, ValueError, AttributeError):
        return None
    return None


def _ends_with_array(tail: bytes) -> bool:
    """Whether the document's last root value is an array (``replayData``, the only one allowed)."""
    rest = tail.rstrip(b" \t\r\n")
    return rest.endswith(b"}") and rest[:-1].rstrip(b" \t\r\n").endswith(b"]")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    # 1e999 would become inf, which no JSON encoder writes back (orjson writes null): refuse it as yajl does
    value = float(text)
    if value in (_INF, -_INF):
        raise ValueError("a number overflows a double")
    return value


def _too_large(size: int, limit: int, at_least: bool = False) -> ReplayRejected:
    more = "more than " if at_least else ""
    return ReplayRejected(ERR_PAYLOAD_TOO_LARGE,
                          f"the replay payload is {more}{size} bytes, over REPLAY_MAX_BYTES={limit}")


def _invalid_json(exc: Exception) -> ReplayRejected:
    # yajl's message quotes the bytes around the error: keep only its first line.
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if text.startswith(("b'", 'b"')):
        text = text[2:].split("\\n", 1)[0]
    return ReplayRejected(ERR_INVALID_REPLAY, f"the payload is not valid JSON ({text})")


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:40] + "..."
